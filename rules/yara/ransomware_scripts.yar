/*
    Vigie - ransomware preparation scripts (batch, PowerShell) found on servers before the
    encryption: they delete shadow copies and backups, stop backup and database services and
    clear the logs, usually all at once.
*/

rule Vigie_Ransomware_Precursor_Script
{
    meta:
        description = "Script combining at least three ransomware preparation steps: shadow copy or backup catalogue deletion, recovery disabled, backup/SQL services stopped, event logs cleared, Defender disabled"
        author = "Vigie"
        date = "2026-11-25"
        modified = "2026-11-25"
        reference = "https://attack.mitre.org/techniques/T1490/"
        severity = "critical"

    strings:
        $vss1 = /vssadmin(\.exe)?\s+delete\s+shadows/ ascii wide nocase
        $vss2 = /shadowcopy\s+delete/ ascii wide nocase
        $vss3 = /resize\s+shadowstorage/ ascii wide nocase
        $wbadmin = /wbadmin(\.exe)?\s+delete\s+(catalog|systemstatebackup|backup)/ ascii wide nocase
        $bcdedit = /bcdedit(\.exe)?\s+[\/-]set\s+\S+\s+(recoveryenabled\s+no|bootstatuspolicy\s+ignoreallfailures)/ ascii wide nocase
        $stop1 = /net1?(\.exe)?\s+stop\s+"?(veeam|backupexec|MSSQL|SQLAgent|SQLWriter|acronis)/ ascii wide nocase
        $stop2 = /sc(\.exe)?\s+config\s+"?(veeam|backupexec|MSSQL|SQLAgent|SQLWriter|acronis)[^\r\n]{0,80}start=\s*disabled/ ascii wide nocase
        $wevtutil = /wevtutil(\.exe)?\s+(cl|clear-log)\s/ ascii wide nocase
        $defender = /Set-MpPreference\s+-DisableRealtimeMonitoring\s+(\$true|1)/ ascii wide nocase

    condition:
        filesize < 1MB and 3 of them
}
