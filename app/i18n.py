"""The tray app in the gardener's language, through Qt's translation machinery.

The language is `GROVE_LANG` when set ("de", "en"), else the desktop's (QLocale). Where a
catalogue ships for it (resources/i18n/grove_<lang>.qm, compiled by Qt's lrelease from the
.ts beside it), a QTranslator is installed on the application, with Qt's own translations of
its standard dialogs, and core's `tr` (core/i18n.py) is pointed at it, so the sentences core
builds for the pages are translated too. Otherwise everything stays English.
"""

from __future__ import annotations

import logging
import os
from importlib import resources

from PySide6.QtCore import QCoreApplication, QLibraryInfo, QLocale, QTranslator

from core import i18n

log = logging.getLogger(__name__)
LANGUAGES = ("de",)  # the catalogues shipped, besides English
TRANSLATOR = "grove-translator"  # the object name of the translators installed here


def wanted_language() -> str:
    lang = os.environ.get("GROVE_LANG") or QLocale.system().name()
    return lang.split("_")[0].split("-")[0].lower()


def catalogue(lang: str) -> str:
    """The compiled catalogue's path for `lang` ("" where none ships)."""
    if lang not in LANGUAGES:
        return ""
    path = resources.files("resources").joinpath(f"i18n/grove_{lang}.qm")
    return str(path) if path.is_file() else ""


def install(app: QCoreApplication, lang: str | None = None) -> str:
    """Translate the app into `lang` (default: `wanted_language()`); returns the language
    now shown ("en" where no catalogue ships for the one wanted). Installing again
    replaces the last one."""
    for old in app.findChildren(QTranslator, TRANSLATOR):
        app.removeTranslator(old)
        old.setParent(None)
    i18n.install(None)
    lang = lang or wanted_language()
    path = catalogue(lang)
    if not path:
        return "en"
    ours, qt = QTranslator(app), QTranslator(app)  # qt: its own words (standard dialogs)
    ours.setObjectName(TRANSLATOR)
    qt.setObjectName(TRANSLATOR)
    if not ours.load(path):
        log.warning("the %s catalogue %s could not be read; Grove stays in English", lang, path)
        return "en"
    if qt.load(QLocale(lang), "qtbase", "_",
               QLibraryInfo.path(QLibraryInfo.LibraryPath.TranslationsPath)):  # where installed
        app.installTranslator(qt)
    app.installTranslator(ours)
    i18n.install(lambda text: QCoreApplication.translate("", text))
    return lang
