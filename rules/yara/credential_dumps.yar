/*
    Vigie - credential dumps left on disk.
*/

rule Vigie_Lsass_Minidump_File
{
    meta:
        description = "Windows minidump (MDMP) of the LSASS process: memory holding credentials, ready to be parsed offline"
        author = "Vigie"
        date = "2026-11-25"
        modified = "2026-11-25"
        reference = "https://attack.mitre.org/techniques/T1003/001/"
        severity = "critical"

    strings:
        $lsass = "lsass.exe" wide nocase
        $lsasrv = "lsasrv.dll" wide nocase
        $msv = "msv1_0.dll" wide nocase

    condition:
        uint32(0) == 0x504D444D and 2 of them
}
