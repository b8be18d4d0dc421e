"""The visitors' self-service health declaration, served on the LAN for phones.

A separate app (`create_form_app`) on its own listener (`form.host`, `form.port`): the LAN
reaches this form and nothing else of the kiosk. A submitted declaration is kept in the
entry log's store and answered with a signed site pass to show at the door.
"""
from __future__ import annotations

from datetime import UTC, datetime

import segno
from flask import Blueprint, Flask, current_app, render_template, request

from ..declarations import questionnaire, sitepass
from ..model import iso, new_id
from .ratelimit import RateLimit

bp = Blueprint("form", __name__)

RATE = (5, 60.0)          # at most 5 declarations a minute from one address
# bytes: a declaration is about 1 kB form-encoded (a long Vietnamese address percent-encoded
# is 9 bytes a letter); 16 kB is room for that many times over, and nothing to hold in memory.
MAX_BODY = 16 * 1024
# What each field's error says beside it: (Vietnamese, English). The questions share one.
FIELD_ERRORS = {
    "name": ("Vui lòng nhập họ và tên (ít nhất 2 ký tự).", "Please enter your full name."),
    "year_of_birth": ("Vui lòng nhập năm sinh bốn chữ số, ví dụ 1990.", "Enter your year of birth, e.g. 1990."),
    "sex": ("Vui lòng chọn giới tính.", "Please choose one."),
    "id_number": ("Số giấy tờ gồm 6 đến 12 chữ cái hoặc chữ số, không dấu cách hay gạch.",
                  "6 to 12 letters or digits, no spaces or dashes."),
    "phone": ("Số điện thoại gồm 8 đến 15 chữ số.", "8 to 15 digits."),
    "question": ("Vui lòng chọn Có hoặc Không.", "Please answer Yes or No."),
}


def create_form_app(kiosk, signing_key) -> Flask:
    app = Flask(__name__)
    # Flask answers 413 for a longer body before reading it; the listener has the same bound.
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.extensions["kiosk"] = kiosk
    app.extensions["signing_key"] = signing_key
    app.extensions["form_rate"] = RateLimit(*RATE)
    app.register_blueprint(bp)
    return app


def _form_page(errors: list, values) -> str:
    return render_template("form.html", questions=questionnaire.QUESTIONS, sexes=questionnaire.SEXES,
                           errors=errors, values=values, messages=FIELD_ERRORS)


@bp.get("/")
def form():
    return _form_page([], {})


@bp.post("/")
def submit():
    kiosk = current_app.extensions["kiosk"]
    now = kiosk.clock.now()
    submission, errors = questionnaire.parse_form(request.form, datetime.fromtimestamp(now, UTC).year)
    if errors:
        return _form_page(errors, request.form), 400
    if not current_app.extensions["form_rate"].allow(request.remote_addr or ""):
        return _form_page(["rate"], request.form), 429
    declaration_id = new_id(now)
    kiosk.log.add_declaration({
        "id": declaration_id, "time": iso(now), "name": submission.name,
        "year_of_birth": submission.year_of_birth, "sex": submission.sex,
        # The ID number itself is not kept: only a keyed hash, to match a PC-Covid QR today.
        "id_hash": kiosk.id_hash(submission.id_number) if submission.id_number else None,
        "phone": submission.phone, "address": submission.address, "flags": list(submission.flags)})
    hours = kiosk.settings["sitepass.valid_hours"]
    text = sitepass.issue(current_app.extensions["signing_key"], kiosk.settings["site.id"], submission.name,
                          now, hours * 3600, flags=submission.flags, declaration_id=declaration_id)
    qr = segno.make(text, error="m", micro=False)
    # A viewBox and no fixed size, so CSS scales the whole code (quiet zone of 4 modules, the
    # minimum ISO/IEC 18004 asks) to the phone's width; a white ground so a dark-mode page
    # does not eat the quiet zone.
    svg = qr.svg_inline(border=4, omitsize=True, light="#fff", svgclass="qr-code")
    return render_template("pass.html", name=submission.name, flags=submission.flags,
                           questions=dict((k, (vi, en)) for k, vi, en in questionnaire.QUESTIONS),
                           svg=svg, png=qr.png_data_uri(scale=8, border=4),
                           hours=hours, payload=text)
