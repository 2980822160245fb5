from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="botreports",
    version="0.1.0",
    description="Plugin-based analytics reports about chat bots: generate, schedule, export.",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["botreports", "botreports.*"]),
    include_package_data=True,
    package_data={"botreports": ["builtin_templates/*", "builtin_templates/**/*",
                                "adapters/console/templates/*", "adapters/console/static/*"]},
    install_requires=[
        "pluggy>=1.5",
        "attrs>=23.1",
        "cattrs>=23.2",
        "sqlite-utils>=3.36",
        "huey>=2.5",
        "jinja2>=3.1.6",
        "markdown>=3.5",
        "nh3>=0.2.15",
        "weasyprint>=62",
        "openpyxl>=3.1",
        "lxml>=5",
        "pygal>=3.0",
        "bottle>=0.13",
        "waitress>=3.0",
        "pyjwt>=2.8",
        "tzdata",
    ],
    extras_require={
        "dev": ["pytest>=8", "hypothesis>=6.100", "pdfminer.six>=20231228", "aiosmtpd>=1.4",
                "pytest-timeout>=2.3", "schemathesis>=4.0", "selenium>=4.20", "moto[server]>=5",
                "boto3>=1.34"],
        "postgres": ["psycopg[binary,pool]>=3.1"],
        "s3": ["boto3>=1.34"],
        "redis": ["redis>=5"],
    },
    entry_points={
        "console_scripts": ["botreports = botreports.adapters.cli:main"],
        "pytest11": ["botreports = botreports.testing"],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Framework :: Pytest",
        "Topic :: Communications :: Chat",
    ],
)
