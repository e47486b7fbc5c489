/*
    Vigie - installers and portable copies of commercial remote-access / RMM tools.

    Not malware: these are legitimate products. In a hospital they are expected only where a
    vendor maintains an application or a medical device; found elsewhere (a user's Downloads,
    a server's Temp) they are a classic persistence of ransomware affiliates.
*/

rule Vigie_RemoteAccessTool_Installer
{
    meta:
        description = "Windows executable carrying the vendor or product strings of a remote-access / RMM tool (AnyDesk, TeamViewer, ScreenConnect, Atera, Splashtop, RustDesk, SimpleHelp)"
        author = "Vigie"
        date = "2026-11-25"
        modified = "2026-11-25"
        reference = "https://attack.mitre.org/techniques/T1219/"
        severity = "medium"

    strings:
        $anydesk1 = "AnyDesk Software GmbH" ascii wide
        $anydesk2 = "philandro Software GmbH" ascii wide
        $teamviewer = "TeamViewer Germany GmbH" ascii wide
        $screenconnect1 = "ScreenConnect.ClientService" ascii wide
        $screenconnect2 = "ConnectWise Control" ascii wide
        $atera1 = "AteraAgent" ascii wide
        $atera2 = "Atera Networks" ascii wide
        $splashtop = "Splashtop Inc." ascii wide
        $rustdesk = "rustdesk.com" ascii wide
        $simplehelp = "SimpleHelp Ltd" ascii wide

    condition:
        uint16(0) == 0x5A4D and filesize < 100MB and any of them
}
