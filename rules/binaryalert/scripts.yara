/*
 * Scripts and command lines that fetch code from the network and run it, open reverse shells or
 * execute attacker-supplied input. Each has a near miss (a benign download, a port check) among
 * the negative samples.
 */
rule script_download_pipe_to_shell
{
    meta:
        description = "Shell command that downloads with curl or wget and pipes the result into a shell"
        author = "BinaryAlert team"
        reference = "https://attack.mitre.org/techniques/T1059/004/"
    strings:
        $pipe = /\b(curl|wget)[ \t][^\n|;&]{0,300}\|[ \t]*(sudo[ \t]+(-[a-zA-Z]+[ \t]+)*)?(\/usr)?(\/bin\/)?(ba|da|z|k)?sh\b/ nocase
    condition:
        $pipe
}

rule script_powershell_download_execute
{
    meta:
        description = "PowerShell that downloads a script and runs it in memory (IEX + WebClient/Invoke-WebRequest)"
        author = "BinaryAlert team"
        reference = "https://attack.mitre.org/techniques/T1059/001/"
    strings:
        $iex1 = /\biex\b/ nocase
        $iex2 = "Invoke-Expression" ascii wide nocase
        $download1 = "DownloadString" ascii wide nocase
        $download2 = "DownloadData" ascii wide nocase
        $download3 = "Net.WebClient" ascii wide nocase
        $download4 = "Invoke-WebRequest" ascii wide nocase
        $download5 = "Invoke-RestMethod" ascii wide nocase
    condition:
        any of ($iex*) and any of ($download*)
}

rule script_powershell_encoded_command
{
    meta:
        description = "PowerShell started with a long base64 -EncodedCommand argument"
        author = "BinaryAlert team"
        reference = "https://attack.mitre.org/techniques/T1027/010/"
    strings:
        $enc = /powershell(\.exe)?[ \t][^\n]{0,120}[ \t][-\/](e|ec|en[a-z]{0,12})[ \t]+[A-Za-z0-9+\/]{40,}/ nocase
    condition:
        $enc
}

rule script_lolbin_download
{
    meta:
        description = "Windows built-in tools abused to download files (certutil -urlcache, bitsadmin /transfer)"
        author = "BinaryAlert team"
        reference = "https://attack.mitre.org/techniques/T1105/"
    strings:
        $certutil = /certutil(\.exe)?[ \t][^\n]{0,100}[-\/]urlcache/ nocase
        $bitsadmin = /bitsadmin(\.exe)?[ \t][^\n]{0,60}\/transfer[ \t]/ nocase
    condition:
        any of them
}

rule script_reverse_shell
{
    meta:
        description = "Reverse shell one-liners: bash /dev/tcp redirection, netcat -e, Python socket + dup2"
        author = "BinaryAlert team"
        reference = "https://attack.mitre.org/techniques/T1059/"
    strings:
        $devtcp = /\/dev\/tcp\/[0-9A-Za-z.\-]{1,253}\/[0-9]{1,5}/
        $nc_exec = /\bn(c|cat)(\.exe)?[ \t][^\n]{0,80}[ \t]-e[ \t]+\S*(\/bin\/(ba)?sh|cmd\.exe)/ nocase
        $py_socket = "socket.socket(" ascii
        $py_dup2 = "os.dup2(" ascii
        $py_shell = /(pty\.spawn|subprocess\.call)\(\s*\[?\s*["']\/bin\/(ba)?sh/
    condition:
        $devtcp or $nc_exec or all of ($py_*)
}

rule webshell_php_request_exec
{
    meta:
        description = "PHP web shell: request parameters passed to eval/assert/system and friends"
        author = "BinaryAlert team"
        reference = "https://attack.mitre.org/techniques/T1505/003/"
    strings:
        $php1 = "<?php" nocase
        $php2 = "<?="
        $exec = /\b(eval|assert|system|passthru|shell_exec|popen|proc_open)[ \t]*\([ \t]*((base64_decode|gzinflate|str_rot13|stripslashes)[ \t]*\([ \t]*)*\$_(POST|GET|REQUEST|COOKIE|SERVER)\b/ nocase
    condition:
        any of ($php*) and $exec
}
