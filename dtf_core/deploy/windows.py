"""``dtf-core deploy windows``: a PowerShell script that registers ``dtf-core worker``
as a scheduled task started at boot and restarted when it fails.

A scheduled task, not a Windows service: ``dtf-core worker`` is a console
program, and a service must answer the service control manager, which would
need a wrapper (NSSM, WinSW) on every host. The task runs as
``NT AUTHORITY\\LOCAL SERVICE`` (no network identity, no admin rights); the
script gives that account read access to the key files and nothing else, and
write access to the worker's directory and to the upload directory serve names
(a POSIX path such as ``/var/lib/dtf/uploads`` means ``\\var\\lib\\dtf\\uploads``
on the worker's drive: docs/suite-format.md, paths on a worker with another OS).
"""

from __future__ import annotations

from dtf_core.deploy import commands
from dtf_core.deploy.common import header
from dtf_core.deploy.settings import DeploySettings

DEFAULT_BIN = r"C:\dtf\.venv\Scripts\dtf-core.exe"
KEY_DIR = r"C:\ProgramData\dtf"
ACCOUNT = r"NT AUTHORITY\LOCAL SERVICE"


def ps_quote(text: str) -> str:
    """A PowerShell single-quoted string (nothing inside is expanded)."""
    return "'" + text.replace("'", "''") + "'"


def ps_array(items: list[str]) -> str:
    return "@(\n" + "".join(f"    {ps_quote(i)}\n" for i in items) + ")"


def windows_path(posix: str, drive: str = "C:") -> str:
    return drive + posix.replace("/", "\\") if posix.startswith("/") else posix


# How Windows programs split a command line (CommandLineToArgvW): quotes around
# arguments with spaces, backslashes doubled only before a quote.
_QUOTE_FN = r"""function ConvertTo-ArgumentLine([string[]]$Items) {
    ($Items | ForEach-Object {
        if ($_ -notmatch '[\s"]' -and $_ -ne '') { $_ }
        else { '"' + (($_ -replace '(\\*)"', '$1$1\"') -replace '(\\+)$', '$1$1') + '"' }
    }) -join ' '
}"""


def generate(s: DeploySettings) -> dict[str, str]:
    paths = s.paths(KEY_DIR, sep="\\")
    argv = commands.worker(s, paths)
    # The worker's own secrets: its token, the result key, its TLS key.
    secrets = [paths[k] for k in ("worker_token", "result_key", "tls_key") if k in paths]
    task = f"{s.name}-worker"
    workdir = KEY_DIR + "\\worker"
    script = f"""{header("windows").rstrip()}
# Registers the scheduled task {ps_quote(task)}: `dtf-core worker` at boot, as
# {ACCOUNT}, restarted every minute after a failure, never stopped for running long.
# Run in an elevated PowerShell: powershell -ExecutionPolicy Bypass -File {task}.ps1
#Requires -RunAsAdministrator
$ErrorActionPreference = 'Stop'

$TaskName = {ps_quote(task)}
$Account = {ps_quote(ACCOUNT)}
$DtfCore = {ps_quote(s.dtf_core or DEFAULT_BIN)}
$WorkDir = {ps_quote(workdir)}
$UploadDir = {ps_quote(windows_path(s.workdir))}
$DtfArgs = {ps_array(argv)}
$Secrets = {ps_array(secrets)}

{_QUOTE_FN}

if (-not (Test-Path -LiteralPath $DtfCore)) {{
    throw "dtf-core not found at $DtfCore (pip install dtf there first)"
}}
foreach ($File in $Secrets) {{
    if (-not (Test-Path -LiteralPath $File)) {{ throw "missing $File (docs/deploy.md: windows)" }}
    # Only SYSTEM, Administrators and the task's account may read a key or token.
    icacls $File /inheritance:r /grant:r 'SYSTEM:(F)' 'Administrators:(F)' `
        "${{Account}}:(R)" | Out-Null
}}
foreach ($Dir in @($WorkDir, $UploadDir)) {{
    New-Item -ItemType Directory -Force -Path $Dir | Out-Null
    icacls $Dir /grant "${{Account}}:(OI)(CI)(M)" | Out-Null
}}

$Action = New-ScheduledTaskAction -Execute $DtfCore `
    -Argument (ConvertTo-ArgumentLine $DtfArgs) -WorkingDirectory $WorkDir
$Trigger = New-ScheduledTaskTrigger -AtStartup
$Settings = New-ScheduledTaskSettingsSet `
    -RestartCount 9999 -RestartInterval (New-TimeSpan -Minutes 1) `
    -ExecutionTimeLimit ([TimeSpan]::Zero) -StartWhenAvailable -MultipleInstances IgnoreNew `
    -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries
$Principal = New-ScheduledTaskPrincipal -UserId $Account -LogonType ServiceAccount -RunLevel Limited
Register-ScheduledTask -TaskName $TaskName -Action $Action -Trigger $Trigger -Settings $Settings `
    -Principal $Principal -Description 'dtf worker (docs/deploy.md)' -Force | Out-Null
Start-ScheduledTask -TaskName $TaskName
Write-Host "started $TaskName; remove it with: Unregister-ScheduledTask -TaskName $TaskName"
"""
    return {f"{task}.ps1": script.replace("\n", "\r\n")}
