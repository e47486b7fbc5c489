/*
    Vigie - ransom notes.

    Notes are the one artefact every ransomware leaves in plain text. Finding one on a share,
    in a user profile or in an e-mail attachment confirms an encryption (or a test run of one).
*/

rule Vigie_RansomNote_Generic
{
    meta:
        description = "Text file worded like a ransom note: says files were encrypted (English or French) and gives Tor, payment or leak-site instructions"
        author = "Vigie"
        date = "2026-11-25"
        modified = "2026-11-25"
        reference = "https://attack.mitre.org/techniques/T1486/"
        severity = "high"

    strings:
        $enc_en1 = "files have been encrypted" ascii wide nocase
        $enc_en2 = "files are encrypted" ascii wide nocase
        $enc_en3 = "data is encrypted" ascii wide nocase
        $enc_en4 = "network has been encrypted" ascii wide nocase
        $enc_fr = /vos (fichiers|donn.{1,2}es) ont .{1,4}t.{1,2} (chiffr|crypt)/ nocase

        $ctx_tor = "Tor Browser" ascii wide nocase
        $ctx_onion = /[a-z2-7]{16,56}\.onion/ ascii wide nocase
        $ctx_btc = "bitcoin" ascii wide nocase
        $ctx_key = "private key" ascii wide nocase
        $ctx_rename = "do not rename" ascii wide nocase
        $ctx_leak = /(publish|leak|release)[a-z]{0,3} (your|the) (data|files)/ ascii wide nocase
        $ctx_fr_rename = "ne renommez pas" ascii wide nocase
        $ctx_fr_decrypt = /d.{1,2}chiffr(er|ement)/ nocase

    condition:
        filesize < 200KB and 1 of ($enc*) and 2 of ($ctx*)
}

rule Vigie_RansomNote_LockBit_Style
{
    meta:
        description = "Ransom note carrying LockBit markers: the group's name with its data-leak wording, note file name or an onion address"
        author = "Vigie"
        date = "2026-11-25"
        modified = "2026-11-25"
        reference = "https://www.cisa.gov/news-events/cybersecurity-advisories/aa23-165a"
        severity = "critical"

    strings:
        $name = "LockBit" ascii wide nocase
        $m_stolen = "data is stolen and encrypted" ascii wide nocase
        $m_note = "Restore-My-Files.txt" ascii wide nocase
        $m_onion = /[a-z2-7]{56}\.onion/ ascii wide nocase
        $m_id = /decryption ID:?\s*[A-F0-9]{16,32}/ ascii wide nocase

    condition:
        filesize < 200KB and $name and 2 of ($m_*)
}

rule Vigie_RansomNote_Conti_Style
{
    meta:
        description = "Ransom note in the style of Conti and its successors: locked-system wording, strain name and a recovery portal or onion address"
        author = "Vigie"
        date = "2026-11-25"
        modified = "2026-11-25"
        reference = "https://www.cisa.gov/news-events/cybersecurity-advisories/aa21-265a"
        severity = "critical"

    strings:
        $name = "CONTI" ascii wide
        $m_locked = "system is LOCKED" ascii wide nocase
        $m_strain = "encrypted by CONTI" ascii wide nocase
        $m_portal = /conti[a-z]{0,12}\.(best|top|onion)/ ascii wide nocase
        $m_onion = /[a-z2-7]{56}\.onion/ ascii wide nocase
        $m_tor = "TOR VERSION" ascii wide nocase

    condition:
        filesize < 200KB and $name and 2 of ($m_*)
}
