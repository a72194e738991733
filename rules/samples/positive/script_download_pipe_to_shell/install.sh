#!/bin/sh
set -e
curl -fsSL https://get.example.net/agent | sudo -E bash
