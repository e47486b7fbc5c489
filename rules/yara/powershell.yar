/*
    Vigie - PowerShell download cradles in scripts, macros, shortcuts and HTA files.
*/

rule Vigie_PowerShell_Download_Cradle
{
    meta:
        description = "Script that downloads code and runs it in memory: WebClient DownloadString/DownloadData or Invoke-WebRequest/RestMethod fed to Invoke-Expression"
        author = "Vigie"
        date = "2026-11-25"
        modified = "2026-11-25"
        reference = "https://attack.mitre.org/techniques/T1059/001/"
        severity = "high"

    strings:
        $exec1 = /\b(iex|Invoke-Expression)\b/ ascii wide nocase
        $exec2 = "[ScriptBlock]::Create(" ascii wide nocase
        $dl1 = "DownloadString(" ascii wide nocase
        $dl2 = "DownloadData(" ascii wide nocase
        $dl3 = /\b(iwr|irm|Invoke-WebRequest|Invoke-RestMethod)\b[^|\r\n]{0,300}\|\s*(iex|Invoke-Expression)\b/ ascii wide nocase
        $dl4 = "Net.WebClient" ascii wide nocase

    condition:
        filesize < 2MB and (
            $dl3 or
            (1 of ($exec*) and 1 of ($dl1, $dl2)) or
            (1 of ($exec*) and $dl4 and 1 of ($dl1, $dl2))
        )
}
