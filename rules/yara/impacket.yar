/*
    Vigie - Impacket remote-execution artefacts in logs, scripts, service configurations and
    files left on servers.
*/

rule Vigie_Impacket_Artifacts
{
    meta:
        description = "Traces of Impacket wmiexec/smbexec/atexec/secretsdump: output redirected to the host's own ADMIN$/C$ share, the smbexec echo-to-batch service command, default names"
        author = "Vigie"
        date = "2026-11-25"
        modified = "2026-11-25"
        reference = "https://attack.mitre.org/techniques/T1021/002/"
        severity = "high"

    strings:
        $redir = /\\\\127\.0\.0\.1\\(ADMIN|C)\$\\__[0-9.]{4,}/ ascii wide nocase
        $quiet = "cmd.exe /Q /c" ascii wide nocase
        $echo = "%COMSPEC% /Q /c echo" ascii wide nocase
        $batch = "execute.bat" ascii wide nocase
        $output = "__output" ascii wide
        $tool1 = "secretsdump" ascii wide nocase
        $tool2 = "impacket" ascii wide nocase

    condition:
        filesize < 20MB and ($redir or $echo or 3 of them)
}
