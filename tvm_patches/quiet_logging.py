"""MetaSchedule's logger setup, made safe with foreign handlers and kept quiet on the console.

For apache-tvm 0.27.0.post1.

Why, 1: every tuning call runs ``create_loggers`` (through ``get_loggers_from_work_dir``), which lists
the names of the handlers already on the ``tvm.s_tir.meta_schedule`` logger into a
``logging.config.dictConfig`` spec. An unnamed handler (pytest >= 9 attaches its log-capture handler
there, and so does a user's plain ``logger.addHandler(logging.StreamHandler())``) crashes it with
``'NoneType' object has no attribute 'format'`` (logging.py:234); a named one that the spec does not
define fails with ``Unable to configure logger``. ``safe_metaschedule_logger_setup`` (installed when
this package is imported) takes those handlers off the logger while ``create_loggers`` runs and puts
them back afterwards, so they keep receiving MetaSchedule's records.

Why, 2: MetaSchedule logs at INFO to stdout by default, including the whole TIR and trace of every
failing candidate and a task table after every batch. The documented way to quiet it, setting the
``tvm.s_tir.meta_schedule`` logger to WARNING, only lasts for one tuning call: ``create_loggers``
sizes the console handler from that logger's level and then (via ``dictConfig``) sets the logger
itself to DEBUG, so the second ``tune_tir``/``tune_tasks`` in a process prints everything, at DEBUG.
``quiet_metaschedule_logging`` re-applies the level before every ``create_loggers``. The per-task log
files under ``work_dir/logs`` keep their DEBUG level; some C++ messages go straight to stderr regardless.
"""

from __future__ import annotations

import functools
import logging

from tvm.s_tir.meta_schedule import logging as ms_logging

METASCHEDULE_LOGGER = "tvm.s_tir.meta_schedule"
# Handlers create_loggers makes itself are named after the logger ("<logger>.console", "<logger>.file").
_OWN_HANDLER_PREFIX = METASCHEDULE_LOGGER + "."

_console_level: int | None = None  # None: leave the level as the user set it


def quiet_metaschedule_logging(level: int = logging.WARNING) -> None:
    """Show only records at ``level`` or above on the console, now and in later tuning calls."""
    global _console_level
    _console_level = level
    logging.getLogger(METASCHEDULE_LOGGER).setLevel(level)
    safe_metaschedule_logger_setup()


def safe_metaschedule_logger_setup() -> None:
    """Wrap MetaSchedule's ``create_loggers`` once (see the module docstring); idempotent."""
    if not getattr(ms_logging.create_loggers, "_cdmpp_safe", False):
        ms_logging.create_loggers = _safe_create_loggers(ms_logging.create_loggers)


def _safe_create_loggers(create_loggers):
    @functools.wraps(create_loggers)
    def create_loggers_safely(*args, **kwargs):
        global_logger = logging.getLogger(METASCHEDULE_LOGGER)
        if _console_level is not None:
            # create_loggers reads the console handler's level from the logger's level, which the
            # previous create_loggers call reset to DEBUG.
            global_logger.setLevel(_console_level)
        foreign = [h for h in global_logger.handlers if not (h.get_name() or "").startswith(_OWN_HANDLER_PREFIX)]
        for handler in foreign:
            global_logger.removeHandler(handler)
        try:
            return create_loggers(*args, **kwargs)
        finally:
            for handler in foreign:
                global_logger.addHandler(handler)  # a no-op for a handler that is already there

    create_loggers_safely._cdmpp_safe = True
    return create_loggers_safely
