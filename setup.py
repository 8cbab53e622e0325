from setuptools import find_packages, setup

setup(
    name="cdmpp-tvm",
    version="0.1.0",
    description="CDMPP learned latency predictor for tensor programs, as a TVM MetaSchedule cost model",
    packages=find_packages(include=["cdmpp_tvm", "cdmpp_tvm.*", "tvm_patches", "tvm_patches.*"]),
    # cdmpp_tvm/configs is a link to the repository's configs/ (model, train and workload YAMLs, the example
    # workload file): the package reads them at run time, so a wheel must carry them. The compiled
    # compact-AST extractor's C++ source is built from the installed package on first use.
    package_data={"cdmpp_tvm": ["pretrained/*.pt", "pretrained/*.json", "pretrained/*.md", "configs/*/*.yaml",
                                "configs/*/*.py", "features/*.cc"]},
    include_package_data=True,
    python_requires=">=3.10",
    install_requires=[
        # apache-tvm-ffi 0.1.15.post2 segfaults in ToJSONGraph while tuning (see tvm_patches/ffi_version.py).
        "apache-tvm==0.27.0.post1",
        "apache-tvm-ffi==0.1.14.post1",
        # torch 2.13.0 is the CPU build on local disk; an unpinned torch pulls a multi-GB CUDA build.
        "torch==2.13.0",
        "numpy",
        "pyyaml",
        "xgboost",
        "scikit-learn",
        "scipy",  # benchmarks/search_overview.py: bootstrap intervals (scikit-learn needs it too)
        "psutil",
        "cloudpickle",
        "tornado",
        "tqdm",
        "optuna",  # cdmpp-tvm tune-hparams
        "matplotlib",
        # tvm_ffi.cpp.load_inline builds the compiled compact-AST featurizer with ninja (a C++17 compiler is
        # also needed; without either the Python walker is used, with a warning).
        "ninja",
    ],
    # Tested with pytest 8.4.2 and 9.2.0 (9 attaches an unnamed log handler that MetaSchedule 0.27 crashed on;
    # tvm_patches.quiet_logging makes that safe).
    extras_require={"test": ["pytest>=8.4,<10"]},
    entry_points={"console_scripts": ["cdmpp-tvm=cdmpp_tvm.cli:main"]},
)
