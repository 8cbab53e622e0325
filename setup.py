from setuptools import find_packages, setup

setup(
    name="cdmpp-tvm",
    version="0.1.0",
    description="CDMPP learned latency predictor for tensor programs, as a TVM MetaSchedule cost model",
    packages=find_packages(include=["cdmpp_tvm", "cdmpp_tvm.*", "tvm_patches", "tvm_patches.*"]),
    package_data={"cdmpp_tvm": ["pretrained/*.pt", "pretrained/*.json", "configs/*.yaml"]},
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
        "psutil",
        "cloudpickle",
        "tornado",
        "tqdm",
        "optuna",  # cdmpp-tvm tune-hparams
        "matplotlib",
    ],
    extras_require={"test": ["pytest"]},
    entry_points={"console_scripts": ["cdmpp-tvm=cdmpp_tvm.cli:main"]},
)
