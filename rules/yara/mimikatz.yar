/*
    Vigie - Mimikatz: the binary, its PowerShell ports and its console output.
*/

rule Vigie_Mimikatz_Strings
{
    meta:
        description = "Mimikatz binary, script port or console output: at least two of its module commands, author handle, banner or credential-provider labels"
        author = "Vigie"
        date = "2026-11-25"
        modified = "2026-11-25"
        reference = "https://attack.mitre.org/software/S0002/"
        severity = "critical"

    strings:
        $cmd1 = "sekurlsa::logonpasswords" ascii wide nocase
        $cmd2 = "lsadump::sam" ascii wide nocase
        $cmd3 = "lsadump::dcsync" ascii wide nocase
        $cmd4 = "privilege::debug" ascii wide nocase
        $cmd5 = "kerberos::golden" ascii wide nocase
        $author = "gentilkiwi" ascii wide nocase
        $banner = "A La Vie, A L'Amour" ascii wide
        $out1 = "* NTLM     :" ascii wide
        $out2 = "msv :" ascii wide
        $out3 = "wdigest :" ascii wide

    condition:
        filesize < 20MB and 2 of them
}
