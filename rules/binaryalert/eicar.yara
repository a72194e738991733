/*
 * The EICAR anti-virus test file: a harmless, standard string that every scanner is expected to
 * flag. Upload it to check that BinaryAlert works end to end.
 */
rule eicar_test_file
{
    meta:
        description = "EICAR anti-virus test file (harmless); proves that detection and alerting work"
        author = "BinaryAlert team"
        reference = "https://www.eicar.org/download-anti-malware-testfile/"
    strings:
        $eicar = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
    condition:
        $eicar
}
