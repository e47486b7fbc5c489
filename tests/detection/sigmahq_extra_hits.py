"""Hits in SigmaHQ's regression samples beyond what each case asks, each read against the sample.

Both tables are exact: test_sigma_regression.py fails on an extra hit that is not listed here and
on an entry that no longer occurs.

OWN_COUNTS: a case whose own rule matches more events than SigmaHQ's `match_count` (1 where the
case gives none), with the count it gives and why each of those events matches.

CROSS_HITS: (case folder, rule file name without .yml) -> why another of the 142 regression rules
matches an event of that case's sample. The reasons are grouped: sibling rules that narrow one
behaviour down (a generic rule and its "suspicious" variants) match the same event by design.
"""

from __future__ import annotations

OWN_COUNTS: dict[str, tuple[int, str]] = {
    "file_event_win_anydesk_artefact": (
        3,
        "the rule wants TargetFilename containing \\AppData\\Roaming\\AnyDesk\\user.conf; three "
        "of the five events write user.conf.new, user.conf~RF2d9c20d.TMP and user.conf.new again",
    ),
    "file_event_win_cred_dump_tools_dropped_files": (
        3,
        "the sample downloads procdump.exe, procdump64.exe and procdump64a.exe, each in the "
        "rule's endswith list (their :Zone.Identifier streams are not)",
    ),
    "proc_creation_win_dtrace_kernel_dump": (
        2,
        "both events run \\dtrace.exe with 'lkd(0)' in the command line (selection_plain), "
        "with and without -n",
    ),
    "proc_creation_win_github_self_hosted_runner": (
        2,
        "one event is Runner.Listener.exe 'configure', the other Runner.Worker.exe "
        "'spawnclient': the listener and the worker halves of the condition, one each",
    ),
    "registry_set_disable_administrative_share": (
        2,
        "the sample sets both LanmanServer\\Parameters\\AutoShareServer and AutoShareWks, the "
        "two endings the rule lists",
    ),
}

_BITSADMIN = (
    "the sample is one 'bitsadmin /transfer' of a .dll from github.com, githubusercontent.com or "
    "an IP into C:\\Users\\Public or AppData\\Local\\Temp: the sibling rules on a suspicious "
    "extension (.dll), a file-sharing domain (github) and a suspicious target folder each match "
    "that same command line where their part is present"
)
_CHROMIUM = (
    "chrome.exe --load-extension= started by cmd.exe: the generic rule matches any such start, the "
    "'suspicious' one adds the cmd.exe parent, so both match"
)
_CERTUTIL = (
    "certutil -encode matches the generic encode rule; the command line also names a .bat or "
    ".xml file, which the suspicious-extension variant lists"
)
_ADFIND = (
    "AdFind.exe (Image and OriginalFileName) matches the PUA execution rule; its arguments "
    "'objectcategory=' or 'trustdmp' match the suspicious-usage rule, whatever the image"
)
_SYSINTERNALS = (
    "the event sets HKU\\...\\Software\\Sysinternals\\PsService\\EulaAccepted: every EULA rule "
    "matches the \\EulaAccepted ending, and the 'susp' one also lists \\Sysinternals"
)

CROSS_HITS: dict[tuple[str, str], str] = {
    (
        "file_event_win_hktl_netexec_file_indicators",
        "file_event_win_cred_dump_tools_dropped_files",
    ): "nxc.exe unpacks its bundled ...\\nxc\\data\\procdump\\procdump.exe, in the endswith list",
    (
        "file_event_win_susp_legitimate_app_dropping_script",
        "file_event_win_susp_legitimate_app_dropping_in_uncommon_location",
    ): "certutil.exe (a listed LOLBIN) writes a .vbs under \\AppData\\Local\\Temp (a listed place)",
    (
        "proc_creation_win_bitsadmin_download_direct_ip",
        "proc_creation_win_bitsadmin_download_susp_extensions",
    ): _BITSADMIN,
    (
        "proc_creation_win_bitsadmin_download_direct_ip",
        "proc_creation_win_bitsadmin_download_susp_targetfolder",
    ): _BITSADMIN,
    (
        "proc_creation_win_bitsadmin_download_file_sharing_domains",
        "proc_creation_win_bitsadmin_download_susp_extensions",
    ): _BITSADMIN,
    (
        "proc_creation_win_bitsadmin_download_file_sharing_domains",
        "proc_creation_win_bitsadmin_download_susp_targetfolder",
    ): _BITSADMIN,
    (
        "proc_creation_win_bitsadmin_download_susp_extensions",
        "proc_creation_win_bitsadmin_download_file_sharing_domains",
    ): _BITSADMIN,
    (
        "proc_creation_win_bitsadmin_download_susp_extensions",
        "proc_creation_win_bitsadmin_download_susp_targetfolder",
    ): _BITSADMIN,
    (
        "proc_creation_win_bitsadmin_download_susp_targetfolder",
        "proc_creation_win_bitsadmin_download_file_sharing_domains",
    ): _BITSADMIN,
    (
        "proc_creation_win_bitsadmin_download_susp_targetfolder",
        "proc_creation_win_bitsadmin_download_susp_extensions",
    ): _BITSADMIN,
    (
        "proc_creation_win_browsers_chromium_load_extension",
        "proc_creation_win_browsers_chromium_susp_load_extension",
    ): _CHROMIUM,
    (
        "proc_creation_win_browsers_chromium_susp_load_extension",
        "proc_creation_win_browsers_chromium_load_extension",
    ): _CHROMIUM,
    (
        "proc_creation_win_certutil_encode",
        "proc_creation_win_certutil_encode_susp_extensions",
    ): _CERTUTIL,
    (
        "proc_creation_win_certutil_encode_susp_extensions",
        "proc_creation_win_certutil_encode",
    ): _CERTUTIL,
    (
        "proc_creation_win_certutil_encode_susp_location",
        "proc_creation_win_certutil_encode",
    ): _CERTUTIL,
    (
        "proc_creation_win_certutil_encode_susp_location",
        "proc_creation_win_certutil_encode_susp_extensions",
    ): _CERTUTIL,
    (
        "proc_creation_win_cmdkey_recon",
        "proc_creation_win_susp_local_system_owner_account_discovery",
    ): "'cmdkey /list': the discovery rule's cmdkey selection wants ' /l' in the command line",
    (
        "proc_creation_win_credential_guard_registry_tampering",
        "proc_creation_win_hvci_registry_tampering",
    ): "powershell Set-ItemProperty on ...\\DeviceGuard EnableVirtualizationBasedSecurity: the "
    "HVCI rule lists that very key and value name",
    (
        "proc_creation_win_curl_download_direct_ip_exec",
        "proc_creation_win_curl_susp_download",
    ): "'curl --output hello.txt https://12.34.56.78/hack/evil.txt' ends with .txt, a listed "
    "suspicious extension",
    (
        "proc_creation_win_curl_susp_download",
        "proc_creation_win_curl_download_susp_file_sharing_domains",
    ): "curl -k https://github.com/.../AllTheThingsx64.dll -o ...: github.com, http, ' -O' "
    "(matched without case, as Sigma does) and a command line ending in .dll",
    (
        "proc_creation_win_pua_adfind_execution",
        "proc_creation_win_pua_adfind_susp_usage",
    ): _ADFIND,
    (
        "proc_creation_win_pua_adfind_susp_usage",
        "proc_creation_win_pua_adfind_execution",
    ): _ADFIND,
    (
        "proc_creation_win_renamed_adfind",
        "proc_creation_win_pua_adfind_execution",
    ): "renamed-AdFind.exe keeps OriginalFileName AdFind.exe, one of the PUA rule's selections",
    (
        "proc_creation_win_svchost_masqueraded_execution",
        "proc_creation_win_susp_system_exe_anomaly",
    ): "svchost.exe run from ...\\Downloads: a listed system image outside every allowed folder",
    (
        "proc_creation_win_wmic_recon_product_class",
        "proc_creation_win_wmic_recon_product",
    ): "wmic ... Path AntiVirusProduct: 'Product' is in the command line and no filter applies",
    (
        "proc_creation_win_wmic_recon_unquoted_service_search",
        "proc_creation_win_wmic_recon_service",
    ): "'wmic service get name,displayname,pathname,startmode': 'service' and no manipulation verb",
    (
        "registry_set_pua_sysinternals_execution_via_eula",
        "registry_set_pua_sysinternals_susp_execution_via_eula",
    ): _SYSINTERNALS,
    (
        "registry_set_pua_sysinternals_renamed_execution_via_eula",
        "registry_set_pua_sysinternals_execution_via_eula",
    ): _SYSINTERNALS,
    (
        "registry_set_pua_sysinternals_renamed_execution_via_eula",
        "registry_set_pua_sysinternals_susp_execution_via_eula",
    ): _SYSINTERNALS,
    (
        "registry_set_pua_sysinternals_susp_execution_via_eula",
        "registry_set_pua_sysinternals_execution_via_eula",
    ): _SYSINTERNALS,
    (
        "proc_creation_win_mal_shai_hulud_indicator",
        "proc_creation_win_github_self_hosted_runner",
    ): "Shai-Hulud registers a runner: Runner.Listener.exe 'configure', the runner rule's "
    "listener half",
}
