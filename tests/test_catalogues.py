"""Every word the guard sees exists in every language, and every code a part can produce
has a phrase: no raw code reaches the screen."""
import ast
import re
from pathlib import Path

from kiosk.codes import CATALOGUE_KEYS, REASONS, REASONS_WITH_ARGUMENT
from kiosk.declarations.questionnaire import QUESTIONS
from kiosk.web.i18n import LANGUAGES, OVERRIDE_REASONS, catalogue, reason_text, word

WEB = Path(__file__).resolve().parents[1] / "kiosk" / "web"


def test_catalogues_have_the_same_keys():
    keys = [set(catalogue(lang)) for lang in LANGUAGES]
    assert all(k == keys[0] for k in keys), set.symmetric_difference(*keys)


def test_every_word_the_pages_use_is_in_the_catalogue():
    used = set(re.findall(r"words\.(\w+)", (WEB / "templates" / "guard.html").read_text()))
    used |= set(re.findall(r"\bW\.(\w+)", (WEB / "static" / "guard.js").read_text()))
    used |= set(OVERRIDE_REASONS)
    for lang in LANGUAGES:
        assert used <= set(catalogue(lang)), used - set(catalogue(lang))


def test_reasons_in_words():
    vi, en = catalogue("vi"), catalogue("en")
    assert reason_text("shown_again:42s", vi) == "Mã đã được quét 42 giây trước"
    assert reason_text("declared:fever", en) == "Declared: fever"
    # an unknown code gets the generic phrase, never the code itself (was: the code)
    assert reason_text("something_new", en) == en["reason_unknown"]
    assert reason_text("something_new:42", vi) == vi["reason_unknown"]
    assert reason_text("declared:new_question", vi) == "Đã khai: " + vi["answer_unknown"]
    assert word(vi, "status_", "quantum") == vi["status_unknown"]
    assert word(vi, "format_", "x-new-format") == vi["format_unknown"]


def test_every_declared_code_has_a_phrase_in_every_catalogue():
    for lang in LANGUAGES:
        words = catalogue(lang)
        missing = [prefix + code for prefix, codes in CATALOGUE_KEYS.items() for code in codes
                   if not words.get(prefix + code) and (prefix, code) != ("kind_", "none")]
        missing += [f"answer_{key}" for key, *_ in QUESTIONS if f"answer_{key}" not in words]
        assert not missing, f"{lang}.json lacks {missing}"
        assert all("{n}" in words[f"reason_{code}"] for code in REASONS_WITH_ARGUMENT), lang


def _reasons_in_source() -> set[str]:
    """Reason codes the deciding code writes: string constants (and f-strings' fixed starts)
    given to fail(), lower(), append()/extend() of a reasons list, or a Declaration's reasons."""
    root = WEB.parent
    found = set()
    files = [root / "policy.py", root / "checkpoint.py",
             *(root / "declarations" / n for n in ("__init__.py", "dcc.py", "dccschema.py", "sitepass.py",
                                                   "pccovid.py"))]

    def code_of(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
            return node.values[0].value
        return None

    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "attr", getattr(node.func, "id", ""))
                args = list(node.args)
                if name == "Declaration" and len(args) >= 3 and isinstance(args[2], ast.Tuple):
                    args = list(args[2].elts)
                elif name not in ("fail", "lower", "append"):
                    continue
                for a in args:
                    code = code_of(a)
                    if code and re.fullmatch(r"[a-z]+(_[a-z]+)+:?", code.split(":")[0] + (":" if ":" in code else "")):
                        found.add(code.split(":")[0])
            elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) \
                    and node.targets[0].id == "NOT_LOGGED":
                found.add(node.value.value)
    return found


def test_the_code_declares_every_reason_it_produces():
    produced = _reasons_in_source()
    assert {"bad_signature", "test_type_unknown", "schema_missing", "app_not_detected", "not_logged"} <= produced
    undeclared = produced - set(REASONS) - {"id_number", "year_of_birth"}
    assert not undeclared, f"reason codes missing from kiosk/codes.py REASONS: {sorted(undeclared)}"
