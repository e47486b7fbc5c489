/*
    Vigie - health-sector data where it should not be.

    HL7 v2 messages and DICOM objects carry patient identities. Found in a mail attachment, an
    upload folder, a file sent to the Internet or a staging folder next to an archiver, they
    are either a leak in progress or data collected for extortion.
*/

rule Vigie_HL7_Patient_Message_In_File
{
    meta:
        description = "HL7 v2 message with a patient identification segment (MSH header followed by a PID segment)"
        author = "Vigie"
        date = "2026-11-25"
        modified = "2026-11-25"
        reference = "https://www.hl7.org/implement/standards/product_brief.cfm?product_id=185"
        severity = "medium"

    strings:
        $msh = /(^|[\r\n\x0b])MSH\|\^~\\&\|/
        $pid = /[\r\n]PID\|[0-9]{0,4}\|[^\r\n]{0,200}\|[^\r\n|]{1,64}\^[^\r\n|]{1,64}/

    condition:
        $msh and $pid and @pid[1] > @msh[1]
}

rule Vigie_HL7_MLLP_Frame_In_File
{
    meta:
        description = "Raw HL7 MLLP frames (start byte 0x0B, MSH segment, end bytes 0x1C 0x0D) in a file: a capture or dump of an HL7 interface"
        author = "Vigie"
        date = "2026-11-25"
        modified = "2026-11-25"
        reference = "https://www.hl7.org/implement/standards/product_brief.cfm?product_id=185"
        severity = "medium"

    strings:
        $start = { 0B 4D 53 48 7C 5E 7E 5C 26 7C }
        $end = { 1C 0D }

    condition:
        $start and $end and @end[1] > @start[1]
}

rule Vigie_DICOM_Patient_Dataset
{
    meta:
        description = "DICOM Part 10 file (DICM marker at offset 128) holding a Patient's Name element (0010,0010) in explicit-VR little-endian"
        author = "Vigie"
        date = "2026-11-25"
        modified = "2026-11-25"
        reference = "https://dicom.nema.org/medical/dicom/current/output/chtml/part10/chapter_7.html"
        severity = "medium"

    strings:
        $patient_name = { 10 00 10 00 50 4E }

    condition:
        uint32(128) == 0x4D434944 and $patient_name in (132..filesize)
}
