/*
 * Windows PE traits worth a look: process-injection imports, packers and writable code.
 */
import "pe"
import "math"

rule pe_process_injection_imports
{
    meta:
        description = "PE importing the classic remote process injection trio (VirtualAllocEx, WriteProcessMemory, remote thread/APC)"
        author = "BinaryAlert team"
        reference = "https://attack.mitre.org/techniques/T1055/"
    condition:
        pe.is_pe and
        pe.imports("kernel32.dll", "VirtualAllocEx") and
        pe.imports("kernel32.dll", "WriteProcessMemory") and
        (
            pe.imports("kernel32.dll", "CreateRemoteThread") or
            pe.imports("kernel32.dll", "QueueUserAPC") or
            pe.imports("ntdll.dll", "NtCreateThreadEx")
        )
}

rule pe_upx_packed
{
    meta:
        description = "PE packed with UPX (UPX0 and UPX1 sections); packing hides the real code from static analysis"
        author = "BinaryAlert team"
        reference = "https://attack.mitre.org/techniques/T1027/002/"
    condition:
        pe.is_pe and
        for any s in pe.sections : (s.name == "UPX0") and
        for any s in pe.sections : (s.name == "UPX1")
}

rule pe_writable_executable_section
{
    meta:
        description = "PE with a section that is both writable and executable (self-modifying code, packers, shellcode loaders)"
        author = "BinaryAlert team"
        reference = "https://attack.mitre.org/techniques/T1027/"
    condition:
        pe.is_pe and
        for any s in pe.sections : (
            (s.characteristics & pe.SECTION_MEM_EXECUTE) != 0 and
            (s.characteristics & pe.SECTION_MEM_WRITE) != 0
        )
}

rule pe_high_entropy_section
{
    meta:
        description = "PE with a large section of near-random bytes (entropy >= 7.2): packed or encrypted payload"
        author = "BinaryAlert team"
        reference = "https://attack.mitre.org/techniques/T1027/002/"
    condition:
        pe.is_pe and
        for any s in pe.sections : (
            s.raw_data_size >= 1024 and
            math.entropy(s.raw_data_offset, s.raw_data_size) >= 7.2
        )
}
