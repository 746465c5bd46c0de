"""The wheel ships the top-level resources/ folder as the package data cnnexplorer/resources/;
pyproject.toml holds everything else."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["cnnexplorer", "cnnexplorer.*"]) + ["cnnexplorer.resources"],
    package_dir={"cnnexplorer.resources": "resources"},
)
