"""Keep MetaSchedule's console output to warnings, for every tuning call in the process.

For apache-tvm 0.27.0.post1.

Why: MetaSchedule logs at INFO to stdout by default, including the whole TIR and trace of every
failing candidate and a task table after every batch. The documented way to quiet it, setting the
``tvm.s_tir.meta_schedule`` logger to WARNING, only lasts for one tuning call: each call's
``get_loggers_from_work_dir`` runs ``create_loggers``, which sizes the console handler from that
logger's level and then (via ``logging.config.dictConfig``) sets the logger itself to DEBUG, so
the second ``tune_tir``/``tune_tasks`` in a process prints everything, at DEBUG. Here the level
is re-applied before every ``create_loggers``. The per-task log files under
``work_dir/logs`` keep their DEBUG level; some C++ messages go straight to stderr regardless.
"""

from __future__ import annotations

import functools
import logging

from tvm.s_tir.meta_schedule import logging as ms_logging

METASCHEDULE_LOGGER = "tvm.s_tir.meta_schedule"

_console_level = logging.WARNING


def quiet_metaschedule_logging(level: int = logging.WARNING) -> None:
    """Show only records at ``level`` or above on the console, now and in later tuning calls."""
    global _console_level
    _console_level = level
    logging.getLogger(METASCHEDULE_LOGGER).setLevel(level)
    if not getattr(ms_logging.create_loggers, "_keeps_console_level", False):
        ms_logging.create_loggers = _keep_console_level(ms_logging.create_loggers)


def _keep_console_level(create_loggers):
    @functools.wraps(create_loggers)
    def create_loggers_with_quiet_console(*args, **kwargs):
        # create_loggers reads the console handler's level from the logger's level, which the
        # previous create_loggers call reset to DEBUG.
        logging.getLogger(METASCHEDULE_LOGGER).setLevel(_console_level)
        return create_loggers(*args, **kwargs)

    create_loggers_with_quiet_console._keeps_console_level = True
    return create_loggers_with_quiet_console
