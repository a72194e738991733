/*
 * Offensive tools that have few legitimate reasons to sit on a corporate machine. Each rule needs
 * several tool-specific strings, so that an article merely naming the tool does not match.
 */
rule hacktool_mimikatz
{
    meta:
        description = "Mimikatz credential dumper: module commands and author strings"
        author = "BinaryAlert team"
        reference = "https://attack.mitre.org/software/S0002/"
    strings:
        $cmd1 = "sekurlsa::logonpasswords" ascii wide nocase
        $cmd2 = "lsadump::sam" ascii wide nocase
        $cmd3 = "lsadump::dcsync" ascii wide nocase
        $cmd4 = "privilege::debug" ascii wide nocase
        $cmd5 = "kerberos::golden" ascii wide nocase
        $author = "gentilkiwi" ascii wide
        $name = "mimikatz" ascii wide nocase
    condition:
        3 of them
}

rule hacktool_netcat
{
    meta:
        description = "Netcat or Ncat network tool: version banners and listener messages"
        author = "BinaryAlert team"
        reference = "https://attack.mitre.org/software/S0508/"
    strings:
        $ncat1 = "Ncat: Version " ascii
        $ncat2 = "https://nmap.org/ncat" ascii
        $ncat3 = "Ncat: Listening on " ascii
        $nc1 = "listening on [any] %d" ascii
        $nc2 = "connect to [%s] from %s [%s] %d" ascii
        $nc3 = "invalid connection to [%s] from %s [%s] %d" ascii
    condition:
        2 of them
}

rule hacktool_meterpreter
{
    meta:
        description = "Metasploit Meterpreter payload: server DLL, reflective loader and stdapi commands"
        author = "BinaryAlert team"
        reference = "https://attack.mitre.org/software/S0081/"
    strings:
        $dll = "metsrv.dll" ascii wide nocase
        $loader = "ReflectiveLoader" ascii
        $ext = "ext_server_stdapi" ascii wide
        $cmd1 = "stdapi_sys_process_execute" ascii
        $cmd2 = "core_channel_open" ascii
    condition:
        3 of them
}

rule hacktool_powersploit
{
    meta:
        description = "PowerSploit post-exploitation PowerShell functions"
        author = "BinaryAlert team"
        reference = "https://attack.mitre.org/software/S0194/"
    strings:
        $f1 = "Invoke-Mimikatz" ascii wide nocase
        $f2 = "Invoke-ReflectivePEInjection" ascii wide nocase
        $f3 = "Invoke-Shellcode" ascii wide nocase
        $f4 = "Invoke-TokenManipulation" ascii wide nocase
        $f5 = "Invoke-DllInjection" ascii wide nocase
        $f6 = "Get-GPPPassword" ascii wide nocase
        $f7 = "Invoke-NinjaCopy" ascii wide nocase
    condition:
        2 of them
}

rule hacktool_cryptominer
{
    meta:
        description = "Cryptocurrency miner: a stratum pool URL together with miner-specific settings"
        author = "BinaryAlert team"
        reference = "https://attack.mitre.org/techniques/T1496/"
    strings:
        $pool1 = "stratum+tcp://" ascii wide nocase
        $pool2 = "stratum+ssl://" ascii wide nocase
        $pool3 = "stratum+tls://" ascii wide nocase
        $miner1 = "xmrig" ascii wide nocase
        $miner2 = "donate-level" ascii wide
        $miner3 = "randomx" ascii wide nocase
        $miner4 = "cryptonight" ascii wide nocase
    condition:
        any of ($pool*) and any of ($miner*)
}
