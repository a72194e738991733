#!/bin/bash
nc -zv db.internal 5432 && echo database reachable
