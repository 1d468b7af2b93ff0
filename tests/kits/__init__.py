"""Test helpers shared by the suite: real servers, real venvs, small fixture envs."""
