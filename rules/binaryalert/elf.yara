/*
 * Linux ELF traits: LD_PRELOAD rootkits and UPX-packed binaries.
 */
import "elf"

rule elf_ld_preload_rootkit
{
    meta:
        description = "ELF shared object that references /etc/ld.so.preload and libc functions rootkits hook to hide files"
        author = "BinaryAlert team"
        reference = "https://attack.mitre.org/techniques/T1574/006/"
    strings:
        $preload = "/etc/ld.so.preload" ascii
        $hook1 = "readdir64" ascii fullword
        $hook2 = "readdir" ascii fullword
        $hook3 = "fopen64" ascii fullword
        $hook4 = "__lxstat" ascii fullword
        $hook5 = "unlinkat" ascii fullword
    condition:
        elf.type == elf.ET_DYN and $preload and 2 of ($hook*)
}

rule elf_upx_packed
{
    meta:
        description = "ELF packed with UPX (UPX! marker and the packer's info string)"
        author = "BinaryAlert team"
        reference = "https://attack.mitre.org/techniques/T1027/002/"
    strings:
        $marker = "UPX!" ascii
        $info = "$Info: This file is packed with the UPX executable packer" ascii
    condition:
        uint32(0) == 0x464C457F and $marker and $info
}
