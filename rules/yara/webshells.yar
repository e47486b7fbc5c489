/*
    Vigie - webshells on intranet web servers (IIS/ASP.NET, PHP, Java application servers).

    Patient portals, appointment booking, lab-result and HR applications of hospitals often run
    on old frameworks; a webshell dropped on one is a foothold inside the network.
*/

rule Vigie_Webshell_ASPX_CommandExec
{
    meta:
        description = "ASP.NET page that starts a process with arguments taken from the HTTP request (command-execution webshell)"
        author = "Vigie"
        date = "2026-11-25"
        modified = "2026-11-25"
        reference = "https://attack.mitre.org/techniques/T1505/003/"
        severity = "critical"

    strings:
        $page1 = "<%@ Page" ascii wide nocase
        $page2 = "<%@ WebHandler" ascii wide nocase
        $page3 = "<script runat=\"server\"" ascii wide nocase
        $proc1 = "Process.Start" ascii wide nocase
        $proc2 = "ProcessStartInfo" ascii wide nocase
        $req1 = "Request.Form" ascii wide nocase
        $req2 = "Request.QueryString" ascii wide nocase
        $req3 = "Request.Item" ascii wide nocase
        $req4 = /Request\s*\[\s*"/ ascii wide nocase
        $shell1 = "cmd.exe" ascii wide nocase
        $shell2 = "powershell" ascii wide nocase
        $shell3 = "StandardOutput" ascii wide nocase

    condition:
        filesize < 500KB and 1 of ($page*) and 1 of ($proc*) and 1 of ($req*) and 1 of ($shell*)
}

rule Vigie_Webshell_PHP_Eval_Input
{
    meta:
        description = "PHP script passing request input (GET/POST/COOKIE), possibly base64-decoded, straight to eval/assert/system/exec"
        author = "Vigie"
        date = "2026-11-25"
        modified = "2026-11-25"
        reference = "https://attack.mitre.org/techniques/T1505/003/"
        severity = "critical"

    strings:
        $php = "<?php" ascii nocase
        $sink = /(eval|assert|system|passthru|shell_exec|exec|popen|proc_open)\s*\(\s*(@?(base64_decode|gzinflate|str_rot13|stripslashes)\s*\(\s*)*@?\$_(GET|POST|REQUEST|COOKIE|SERVER)\s*\[/ ascii nocase

    condition:
        filesize < 500KB and $php and $sink
}

rule Vigie_Webshell_JSP_Runtime_Exec
{
    meta:
        description = "JSP page running an operating-system command built from a request parameter (Runtime.exec / ProcessBuilder)"
        author = "Vigie"
        date = "2026-11-25"
        modified = "2026-11-25"
        reference = "https://attack.mitre.org/techniques/T1505/003/"
        severity = "critical"

    strings:
        $jsp1 = "<%@ page" ascii nocase
        $jsp2 = "<%" ascii
        $exec1 = "Runtime.getRuntime().exec(" ascii
        $exec2 = "new ProcessBuilder(" ascii
        $param = "request.getParameter(" ascii
        $out = "getInputStream()" ascii

    condition:
        filesize < 500KB and 1 of ($jsp*) and 1 of ($exec*) and $param and $out
}
