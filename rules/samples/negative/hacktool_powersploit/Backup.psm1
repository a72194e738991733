function Invoke-Backup {
  param([string] $Path)
  Copy-Item $Path \\backup\share
}
Export-ModuleMember -Function Invoke-Backup
