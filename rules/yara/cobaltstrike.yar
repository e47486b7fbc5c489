/*
    Vigie - Cobalt Strike beacons.

    The beacon configuration is a table of (setting id, type, length, value) entries; its first
    three settings (beacon type, port, sleep time) have fixed ids, types and lengths, so their
    header bytes are constant: in clear, or XOR-encoded with the single byte 0x69 (version 3)
    or 0x2e (version 4). Memory dumps, dropped DLLs and staged payloads carry it.
*/

rule Vigie_CobaltStrike_Beacon_Config
{
    meta:
        description = "Cobalt Strike-like beacon configuration block: the headers of settings 1-3 in clear or XOR-encoded with 0x69 or 0x2e"
        author = "Vigie"
        date = "2026-11-25"
        modified = "2026-11-25"
        reference = "https://attack.mitre.org/software/S0154/"
        severity = "critical"

    strings:
        // setting 1 (short, len 2) ?? ?? setting 2 (short, len 2) ?? ?? setting 3 (int, len 4)
        $cfg_plain = { 00 01 00 01 00 02 ?? ?? 00 02 00 01 00 02 ?? ?? 00 03 00 02 00 04 }
        $cfg_x69 = { 69 68 69 68 69 6B ?? ?? 69 6B 69 68 69 6B ?? ?? 69 6A 69 6B 69 6D }
        $cfg_x2e = { 2E 2F 2E 2F 2E 2C ?? ?? 2E 2C 2E 2F 2E 2C ?? ?? 2E 2D 2E 2C 2E 2A }

    condition:
        any of them
}
