@echo off
powershell.exe -NoProfile -ExecutionPolicy Bypass -File .\deploy.ps1
