/*
 * Rules on the file's name (the `filename` and `extension` externals, set per scan from the S3
 * key or the local path): executables dressed up as documents.
 */
rule filename_double_extension
{
    meta:
        description = "File name with a document extension followed by an executable one (invoice.pdf.exe)"
        author = "BinaryAlert team"
        reference = "https://attack.mitre.org/techniques/T1036/007/"
    condition:
        filename matches /\.(pdf|docx?|xlsx?|pptx?|rtf|txt|jpe?g|png|gif|mp3|mp4|zip)[ \t_]*\.(exe|scr|com|pif|cpl|bat|cmd|vbs|js|jse|hta|lnk)$/i
}

rule pe_with_document_extension
{
    meta:
        description = "Windows executable (MZ/PE header) whose extension claims it is a document or image"
        author = "BinaryAlert team"
        reference = "https://attack.mitre.org/techniques/T1036/008/"
    condition:
        uint16(0) == 0x5A4D and
        uint32(uint32(0x3C)) == 0x00004550 and
        extension matches /^\.(pdf|docx?|xlsx?|pptx?|rtf|txt|jpe?g|png|gif)$/i
}
