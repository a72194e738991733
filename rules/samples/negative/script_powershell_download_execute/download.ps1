Invoke-WebRequest -Uri https://example.com/setup.msi -OutFile setup.msi
Start-Process msiexec.exe -ArgumentList '/i setup.msi /qn' -Wait
