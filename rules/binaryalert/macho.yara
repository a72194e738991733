/*
 * macOS Mach-O traits: persistence through launchd agents and daemons.
 */
rule macho_launchd_persistence
{
    meta:
        description = "Mach-O binary that writes a LaunchAgent/LaunchDaemon and loads it with launchctl"
        author = "BinaryAlert team"
        reference = "https://attack.mitre.org/techniques/T1543/001/"
    strings:
        $dir1 = "/Library/LaunchAgents/" ascii wide
        $dir2 = "/Library/LaunchDaemons/" ascii wide
        $load1 = "launchctl load" ascii wide
        $load2 = "launchctl bootstrap" ascii wide
        $load3 = "<key>RunAtLoad</key>" ascii wide
    condition:
        (
            uint32(0) == 0xFEEDFACE or uint32(0) == 0xFEEDFACF or
            uint32be(0) == 0xFEEDFACE or uint32be(0) == 0xFEEDFACF
        ) and
        any of ($dir*) and any of ($load*)
}
