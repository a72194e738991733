function Invoke-Mimikatz {
  param([string] $Command)
}
function Invoke-NinjaCopy {
  param([string] $Path)
}
Export-ModuleMember -Function Invoke-Mimikatz, Invoke-NinjaCopy
