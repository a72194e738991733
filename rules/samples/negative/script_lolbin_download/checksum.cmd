@echo off
certutil -hashfile setup.exe SHA256
