/*
  dsxa_lite default rule set (original rules of the dsx-connect project).

  Every rule carries meta `description` and `threat_type`, one of DSXA's threat types
  (RANSOMWARE, BACKDOOR, DROPPER, PUA, SPYWARE, VIRUS, WORM, DUALUSE; checked when the rules
  compile). The scanner defines three globals rules may use: dsxa_file_type (PE, ELF, Mach-O, PDF,
  OOXML Word, OLE, RTF, ZIP, Text, Unknown, ...: see dsxa_lite/filetype.py), dsxa_file_size (bytes
  of the whole file) and dsxa_window_offset (start of the scanned window inside a large file).
*/

rule DSXA_Lite_Test_Marker
{
    meta:
        description = "Harmless marker string that tests and demos use to make a YARA-detected file"
        threat_type = "VIRUS"

    strings:
        $marker = "DSXA-LITE-TEST-MALWARE-MARKER"

    condition:
        $marker
}

rule PowerShell_Download_Cradle
{
    meta:
        description = "PowerShell that downloads code and runs it in memory (download cradle)"
        threat_type = "DROPPER"

    strings:
        $run1 = "Invoke-Expression" nocase ascii wide
        $run2 = /\bIEX\s*[\(\$]/ nocase ascii wide
        $run3 = /\|\s*IEX\b/ nocase ascii wide
        $client = "Net.WebClient" nocase ascii wide
        $fetch1 = ".DownloadString(" nocase ascii wide
        $fetch2 = ".DownloadData(" nocase ascii wide
        $fetch3 = "Invoke-WebRequest" nocase ascii wide
        $fetch4 = "Invoke-RestMethod" nocase ascii wide
        $fetch5 = /\b(iwr|irm)\s+['"]?https?:\/\// nocase ascii wide

    condition:
        any of ($run*) and ($client and any of ($fetch1, $fetch2) or any of ($fetch3, $fetch4, $fetch5))
}

rule Document_With_Embedded_PE
{
    meta:
        description = "Office document, PDF or RTF carrying a Windows executable"
        threat_type = "DROPPER"

    strings:
        // a standard PE: the DOS stub message starts 0x4E bytes after the "MZ" header
        $pe = /MZ.{76}This program cannot be run in DOS mode/s
        $word = "WordDocument" wide
        $excel = "Workbook" wide
        $powerpoint = "PowerPoint Document" wide

    condition:
        (
            dsxa_file_type == "PDF" or dsxa_file_type == "RTF" or
            (dsxa_file_type == "OLE" and any of ($word, $excel, $powerpoint))
        )
        and $pe
}
