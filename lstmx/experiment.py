"""Kept for experiment files written against it: ``from lstmx.experiment import
Preset, main``. The experiment protocol, sweep runner and report live in
`lstmx.lab`."""

from lstmx.lab.experiment import Preset
from lstmx.lab.command import main

__all__ = ["Preset", "main"]
