"""The one thing pyproject.toml cannot say: find every package under `broadcaster` *and* add the viewer.

`[tool.setuptools.packages.find]` finds the packages in the tree but cannot add `broadcaster.viewer`,
whose files live in the top-level `viewer/` folder (mapped by `package-dir` in pyproject.toml); a
hand-written `packages` list is what once left `broadcaster.http` out of the wheel. Everything else
about the package is in pyproject.toml.
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["broadcaster", "broadcaster.*"]), "broadcaster.viewer"])
