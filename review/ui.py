"""The only module of review/ that imports streamlit: sign-in, session, pickers, safe text.

Pages call these helpers and the rest of review/; they run no SQL and no cleanlab.
"""
from __future__ import annotations

import html
import re
import time

import streamlit as st

from . import auth, store
from .datasets import Dataset, get
from .errors import ReviewError

SESSION_SECONDS = 8 * 3600      # a signed-in session lasts this long without activity
TEXT_PREVIEW = 5000             # characters of a long text drawn before "show all"


def connect():
    """A fresh connection for this script run (never shared across threads)."""
    return store.connect()


def setup(title: str) -> None:
    st.set_page_config(page_title=f"{title} · Label review", page_icon="🔎", layout="wide")


def page(title: str, role: str = "annotator", heading: str | None = None):
    """Every page's preamble: page config, a connection, the title, and the sign-in gate.

    Returns (db, user); stops the page for signed-out visitors and lower roles.
    """
    setup(title)
    db = connect()
    st.title(heading or title)
    return db, require(db, role)


def page_with_dataset(title: str, role: str = "annotator", heading: str | None = None):
    """page() plus the shared dataset picker; stops the page when there is no dataset.

    Returns (db, user, dataset)."""
    db, user = page(title, role, heading)
    ds = dataset_picker(db)
    if ds is None:
        st.stop()
    return db, user, ds


def current_user(db) -> auth.User | None:
    """The signed-in user, re-checked against the database; None if signed out or expired."""
    s = st.session_state.get("user")
    if not s:
        return None
    name, role, last_seen = s
    if time.time() - last_seen > SESSION_SECONDS:
        st.session_state.pop("user", None)
        st.session_state["flash"] = "Your session expired: sign in again."
        return None
    try:
        user = auth.get_user(db, name)  # role changes and deactivation take effect at once
    except ReviewError:
        st.session_state.pop("user", None)
        return None
    st.session_state["user"] = (user.name, user.role, time.time())
    return user


def sign_in_form(db) -> None:
    """The sign-in form, or the first-admin form on an empty database."""
    flash = st.session_state.pop("flash", None)
    if flash:
        st.info(flash)
    if not auth.has_users(db):
        st.subheader("Welcome: create the admin account")
        st.caption("This database has no accounts yet. The first account is the admin; it can add leads and annotators.")
        with st.form("first_admin"):
            name = st.text_input("User name", key="first_name")
            pw = st.text_input("Password (at least 8 characters)", type="password", key="first_pw")
            pw2 = st.text_input("Repeat the password", type="password", key="first_pw2")
            if st.form_submit_button("Create admin account", type="primary"):
                if pw != pw2:
                    st.error("The two passwords differ: type them again.")
                else:
                    try:
                        auth.create_user(db, name.strip(), "admin", pw, None)
                        user = auth.sign_in(db, name.strip(), pw)
                        st.session_state["user"] = (user.name, user.role, time.time())
                        st.rerun()
                    except ReviewError as exc:
                        st.error(str(exc))
        return
    st.subheader("Sign in")
    with st.form("sign_in"):
        name = st.text_input("User name", key="signin_name")
        pw = st.text_input("Password", type="password", key="signin_pw")
        if st.form_submit_button("Sign in", type="primary"):
            try:
                user = auth.sign_in(db, name.strip(), pw)
                st.session_state["user"] = (user.name, user.role, time.time())
                st.rerun()
            except ReviewError as exc:
                st.error(str(exc))


NAV = [  # (page file, label, lowest role that may use it)
    ("app.py", "Home", "annotator"),
    ("pages/1_Upload.py", "Upload", "lead"),
    ("pages/2_Audit.py", "Audit", "annotator"),
    ("pages/3_Review.py", "Review", "annotator"),
    ("pages/9_Label.py", "Label", "annotator"),
    ("pages/4_Verify.py", "Verify", "lead"),
    ("pages/5_Export.py", "Export", "lead"),
    ("pages/6_Audit_trail.py", "Audit trail", "lead"),
    ("pages/8_Annotators.py", "Annotators", "lead"),
    ("pages/7_Users.py", "Users", "admin"),
]


def sidebar(user: auth.User) -> None:
    """The pages this user's role may use, and who is signed in."""
    with st.sidebar:
        for page, label, role in NAV:
            if user.can(role):
                st.page_link(page, label=label)
        st.divider()
        st.markdown(f"Signed in as **{escape_md(user.name)}** ({user.role})")
        if st.button("Sign out", key="sign_out"):
            for k in list(st.session_state.keys()):
                del st.session_state[k]
            st.rerun()


def require(db, role: str = "annotator") -> auth.User:
    """Stop the page unless someone with at least ``role`` is signed in."""
    user = current_user(db)
    if user is None:
        sign_in_form(db)
        st.stop()
    sidebar(user)
    if not user.can(role):
        st.warning(f"This page is for a {role} or above; you are signed in as {user.role}.")
        st.stop()
    return user


def dataset_picker(db, key: str = "dataset") -> Dataset | None:
    """A select box of datasets; the choice is shared by every page. None if there are none."""
    from .datasets import overview
    names = [d["name"] for d in overview(db)]
    if not names:
        st.info("No dataset yet. A lead uploads one on the Upload page, or loads the demo from the home page.")
        return None
    current = st.session_state.get("dataset_name")
    index = names.index(current) if current in names else 0
    name = st.selectbox("Dataset", names, index=index, key=f"{key}_picker")
    st.session_state["dataset_name"] = name
    return get(db, name)


def escape_md(s: str) -> str:
    """Text shown inside st.markdown as literal text: every markdown/HTML punctuation mark backslash-escaped."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|~<>&$:])", r"\\\1", str(s))


def show_text(text: str | None, key: str) -> None:
    """A user's text, drawn as text (escaped; never HTML or markdown). Long texts folded."""
    if text is None or not str(text).strip():
        st.html('<div style="color:#b00;font-style:italic">(empty text)</div>')
        return
    text = str(text)
    style = ("white-space:pre-wrap;word-break:break-word;font-size:1.1rem;line-height:1.5;"
             "padding:0.8rem 1rem;border-radius:0.5rem;background:#f5f7fa;border:1px solid #dde3ea")
    if len(text) <= TEXT_PREVIEW or st.session_state.get(f"full_{key}"):
        st.html(f'<div class="item-text" style="{style}">{html.escape(text)}</div>')
    else:
        st.html(f'<div class="item-text" style="{style}">{html.escape(text[:TEXT_PREVIEW])}…</div>')
        if st.button(f"Show all {len(text):,} characters", key=f"more_{key}"):
            st.session_state[f"full_{key}"] = True
            st.rerun()


def plural(n: int, noun: str) -> str:
    """'1 decision', '3 decisions'."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def badge(label: str, color: str) -> str:
    """A coloured pill (label escaped) for st.html."""
    return (f'<span style="background:{color};color:white;padding:2px 10px;border-radius:10px;'
            f'font-size:0.9rem;margin-right:6px">{html.escape(str(label))}</span>')


def progress_callback(bar):
    """Adapter: review's progress(fraction, message) -> a st.progress bar."""
    def cb(fraction: float, message: str) -> None:
        bar.progress(max(0.0, min(1.0, fraction)), text=message)
    return cb


def error(exc: Exception) -> None:
    st.error(str(exc))


def ner_sentence(tokens: list[str], tags: list[str], scheme: str, entity_types: list[str] | None = None,
                 flagged=(), predicted=None, confidence=None) -> None:
    """A sentence with its entities coloured by type (with a legend above when ``entity_types``
    is given), suspect tokens outlined with the model's tag and confidence beside them. Every
    token is escaped (review.ner)."""
    from . import ner
    if entity_types is not None:
        st.html(ner.legend_html(entity_types))
    st.html('<div style="font-size:1.1rem;padding:0.6rem 1rem;border-radius:0.5rem;background:#f5f7fa;'
            'border:1px solid #dde3ea">' + ner.token_view_html(tokens, tags, scheme, flagged, predicted, confidence)
            + "</div>")


def review_ner_sentence(db, ds: Dataset, user: auth.User, s, state: dict, revising: bool, navigation) -> None:
    """The review of one NER sentence: coloured view with suspects, change any token's tag,
    accept the model's tags for a suspect span, keep, unsure. Decisions go through review.workflow."""
    import json

    from . import ner, ner_store, workflow
    tags_now = json.loads(s.current_label)
    view = s.probs or {}
    flagged, predicted, conf = view.get("flagged", []), view.get("predicted"), view.get("confidence")
    note_key = f"note_{ds.id}_{s.idx}"

    def act(decision: str, tags=None, what: str = "") -> None:
        try:
            workflow.decide(db, ds, s.idx, user, decision, s.version, new_label=tags, note=st.session_state.get(note_key, ""))
            what = what or {"keep": "kept as it is", "unsure": "marked unsure"}[decision]
            st.session_state["review_flash"] = ("ok", f"Sentence {s.key}: {what}.")
        except ReviewError as exc:   # StaleViewError included
            st.session_state["review_flash"] = ("warn", str(exc))
        state["back"] = None
        st.rerun()

    head = f"**Sentence {escape_md(s.key)}** · rank {s.rank if s.rank is not None else '–'} · {plural(len(s.tokens), 'token')}"
    st.markdown(head + (" · going back to a sentence you decided" if revising else ""))
    ner_sentence(s.tokens, tags_now, ds.mapping.scheme, ner_store.entity_types(ds), flagged, predicted, conf)
    if s.reason:
        st.markdown("**Why it is flagged:** " + escape_md(s.reason))
    if s.latest_review and s.latest_review["status"] == "rejected":
        st.warning(f"A lead rejected an earlier decision ({s.latest_review['decision']} by {s.latest_review['reviewer']}): "
                   f"{s.latest_review['verify_note']}")
    if revising and not (s.latest_review and s.latest_review["reviewer"] == user.name and s.latest_review["status"] == "pending"):
        st.info(f"This sentence is {s.state}: it can no longer be changed here.")
        if st.button("Back to the queue", key="leave_back"):
            state["back"] = None
            st.rerun()
        return

    ek = f"ner_edit_{ds.id}_{s.idx}_{s.version}"          # the annotator's changes, not saved yet
    edited = st.session_state.setdefault(ek, list(tags_now))
    options = ner_store.tag_options(ds)
    st.markdown("**Change any token's tag**")
    c = st.columns([3, 2, 2], vertical_alignment="bottom")
    tok = c[0].selectbox("Token", range(len(s.tokens)), index=flagged[0] if flagged else 0, key=f"tok_{ek}",
                         format_func=lambda j: f"{j}: {s.tokens[j]}  ({edited[j]})" + ("  ⚠ suspect" if j in flagged else ""))
    new_tag = c[1].selectbox("New tag", options, index=options.index(edited[tok]) if edited[tok] in options else 0,
                             key=f"tag_{ek}_{tok}")
    if c[2].button("Set this tag", key="set_tag"):
        edited[tok] = new_tag
        st.rerun()
    changed = [j for j in range(len(edited)) if edited[j] != tags_now[j]]
    if changed:
        st.markdown("**Your changes:** " + escape_md(", ".join(f"{j} {s.tokens[j]}: {tags_now[j]} → {edited[j]}" for j in changed[:8])))
        ner_sentence(s.tokens, edited, ds.mapping.scheme)
        problems = ner.scheme_violations(edited, ds.mapping.scheme)
        if problems:
            st.error(f"Not a valid {ds.mapping.scheme} sequence yet: " +
                     "; ".join(f"token {j} {s.tokens[j]!r}: {why}" for j, why in problems[:3]) + ". Change that tag too.")
    st.text_input("Note (optional)", key=note_key)
    st.markdown("**Decide** (keyboard: K keep, U unsure, S skip, B back)")
    b = st.columns(4)
    if b[0].button("Save my changes", key="save_tags", type="primary", disabled=not changed):
        act("relabel", edited, what=f"{plural(len(changed), 'tag')} changed")
    if b[1].button("Keep as it is", key="keep", shortcut="K", help="The given tags are right"):
        act("keep")
    if b[2].button("Unsure", key="unsure", shortcut="U", help="Leave it to a lead"):
        act("unsure")
    if changed and b[3].button("Discard my changes", key="discard"):
        st.session_state.pop(ek, None)
        st.rerun()
    spans = ner_store.flagged_spans(flagged) if predicted else []
    if spans:
        st.markdown("**Accept the model's tags** for a suspect span (one click saves the sentence)")
        cols = st.columns(min(len(spans), 4))
        for k, (a, z) in enumerate(spans[:8]):
            words = " ".join(s.tokens[a:z])
            proposal = ner_store.accept_span(edited, predicted, a, z, ds.mapping.scheme)
            if cols[k % len(cols)].button(f"{words[:30]} → {' '.join(predicted[a:z])[:30]}", key=f"accept_{k}",
                                          disabled=proposal == tags_now):
                act("relabel", proposal, what=f"the model's tags accepted for {words!r}")
    navigation()


def upload_ner(db, user: auth.User, up) -> None:
    """Upload page for a token-tagged file: what was read (sentences, tokens, scheme, entity types,
    the first sentences coloured), a name, and the ingest with a progress bar."""
    from pathlib import Path

    from . import audit, ner_store
    data = up.getvalue()
    try:
        corpus = ner_store.read_corpus(data, up.name)
    except ReviewError as exc:
        error(exc)
        st.stop()
    st.subheader(f"NER file: {corpus.format}, {len(corpus.sentences):,} sentences, {corpus.n_tokens:,} tokens")
    docs = len({x.doc for x in corpus.sentences})
    st.markdown(f"Scheme **{corpus.scheme}** (detected) · entity types **{escape_md(', '.join(corpus.entity_types) or '(none)')}** · "
                f"{plural(docs, 'document')}" + (f" · {corpus.n_columns} columns, the tag in the last" if corpus.n_columns else "")
                + (" · your own per-token probabilities" if corpus.prob_tag_names else ""))
    for k, sent in enumerate(corpus.sentences[:3]):
        ner_sentence(sent.tokens, sent.tags, corpus.scheme, corpus.entity_types if k == 0 else None)
    name = st.text_input("Dataset name", value=Path(up.name).stem or up.name, key="dataset_name_input")
    if st.button("Check and ingest", type="primary", key="ingest"):
        bar = st.progress(0.0, text="Storing sentences")
        try:
            ds_id = ner_store.write_ner_dataset(db, corpus, data, name, user, progress_callback(bar))
            bar.progress(1.0, text="Checking the tags against the scheme")
            audit.run_integrity(db, ds_id, user)
            bar.empty()
        except ReviewError as exc:
            bar.empty()
            error(exc)
            st.stop()
        st.session_state["dataset_name"] = name.strip()
        st.success(f"Dataset {name.strip()!r} ingested: {plural(len(corpus.sentences), 'sentence')}, "
                   f"{plural(corpus.n_tokens, 'token')}, scheme {corpus.scheme}. Run the audit to find suspect tokens.")
        st.page_link("pages/2_Audit.py", label="Go to the audit")


def verify_ner_card(ds: Dataset, r: dict, do) -> None:
    """A pending NER decision: the sentence before and after, the changed tokens; approve,
    reject with a reason, or override with the lead's own tags (space-separated)."""
    import json
    tokens, before = json.loads(r["tokens"]), json.loads(r["current_label"])
    after = json.loads(r["new_label"]) if r["new_label"] else before
    what = {"relabel": "tags changed", "keep": "kept as it is", "unsure": "unsure"}[r["decision"]]
    st.markdown(f"**Sentence {escape_md(r['key'])}** · {what} by **{escape_md(r['reviewer'])}** at "
                f"{r['created_at'][:16].replace('T', ' ')}")
    changed = [j for j in range(len(tokens)) if before[j] != after[j]]
    st.caption("Before")
    ner_sentence(tokens, before, ds.mapping.scheme, flagged=changed)
    if changed:
        st.caption("After: " + ", ".join(f"{j} {tokens[j]}: {before[j]} → {after[j]}" for j in changed[:10]))
        ner_sentence(tokens, after, ds.mapping.scheme, flagged=changed)
    if r["note"]:
        st.markdown(f"note: {escape_md(r['note'])}")
    c = st.columns([1, 3, 1, 3, 1])
    if c[0].button("Approve", key=f"approve_{r['id']}", type="primary", disabled=r["decision"] == "unsure"):
        do(r, "approve")
    reason = c[1].text_input("Reason to reject", key=f"reason_{r['id']}", label_visibility="collapsed", placeholder="Reason to reject")
    if c[2].button("Reject", key=f"reject_{r['id']}"):
        do(r, "reject", note=reason)
    own = c[3].text_input("Your tags, space-separated", value=" ".join(after), key=f"ovl_{r['id']}", label_visibility="collapsed")
    if c[4].button("Override", key=f"override_{r['id']}"):
        do(r, "override", label=own.split(), note=reason)


def judge_config():
    """The judge's endpoint: the page's fields (this session only) over .streamlit/secrets.toml
    (llm_base_url, llm_model, llm_api_key) over the environment. The key never leaves memory."""
    from . import judge
    try:
        secrets = {k: st.secrets.get(f"llm_{k}", "") for k in ("base_url", "model", "api_key")}
    except Exception:   # no secrets.toml: fine
        secrets = {}
    values = {k: st.session_state.get(f"judge_{k}") or secrets.get(k) or "" for k in ("base_url", "model")}
    values["api_key"] = secrets.get("api_key") or ""
    return judge.config_from(values)


def judge_tab(db, ds: Dataset, user: auth.User) -> None:
    """Audit page, Judge tab: endpoint status, the cost of a run before it starts, run with a
    progress bar and cancel, the verdicts."""
    from . import charts, judge
    if ds.task != "text" or ds.mapping.multi:
        st.info("The judge works on single-label text classification datasets.")
        return
    try:
        cfg = judge_config()
        cfg_error = None
    except ReviewError as exc:
        cfg, cfg_error = None, str(exc)
    if user.can("lead"):
        with st.expander("Endpoint" + (f": {cfg.model} at {cfg.base_url}" if cfg else " (not configured)"), expanded=cfg is None):
            st.caption(judge.SETUP_HELP + " The fields below override the URL and model for this session.")
            c1, c2 = st.columns(2)
            c1.text_input("Base URL", key="judge_base_url", placeholder="https://api.openai.com/v1")
            c2.text_input("Model", key="judge_model", placeholder="gpt-4o-mini")
            if cfg is not None:
                st.caption("API key: " + ("set (from the environment or secrets)" if cfg.api_key else "none (the endpoint must not need one)"))
    if cfg_error:
        st.error(cfg_error)
    counts = judge.verdict_counts(db, ds)
    flash = st.session_state.pop("judge_flash", None)
    if flash:
        st.success(flash)
    if user.can("lead"):
        flagged = sum(counts.get(k, 0) for k in ("YES", "NO", "UNKNOWN", "not judged"))
        c1, c2 = st.columns([1, 2], vertical_alignment="bottom")
        n = c1.number_input("Rows to judge, most suspect first", min_value=1, max_value=max(flagged, 1),
                            value=min(flagged, 50) or 1, step=10, key="judge_limit")
        if cfg is None:
            c2.button("Run the judge", disabled=True, key="judge_run", help="Configure an endpoint first")
        else:
            p = judge.plan(db, ds, cfg.model, int(n))
            if c2.button(f"Run the judge on {p['rows']:,} rows ({plural(p['calls'], 'call')}, {p['cached']:,} cached)",
                         type="primary", key="judge_run", disabled=p["rows"] == 0):
                st.button("Cancel", key="judge_cancel", help="Stops after the calls in flight; verdicts so far are kept")
                bar = st.progress(0.0, text="Starting")
                try:
                    got = judge.run_judge(db, ds, user, cfg, int(n), progress=progress_callback(bar))
                    st.session_state["judge_flash"] = (
                        f"Judged {plural(got['rows'], 'row')}: {got['calls']:,} calls, {got['cached']:,} cached; "
                        f"YES {got['YES']:,}, NO {got['NO']:,}, UNKNOWN {got['UNKNOWN']:,}.")
                    st.rerun()
                except ReviewError as exc:
                    bar.empty()
                    error(exc)
    if not counts or counts.get("not judged", 0) == sum(counts.get(k, 0) for k in ("YES", "NO", "UNKNOWN", "not judged")):
        st.caption("No verdict yet." + ("" if user.can("lead") else " A lead runs the judge."))
        return
    a, b = st.columns([2, 1])
    a.plotly_chart(charts.judge_verdicts(counts), key="judge_chart")
    agree = counts.get("agreement")
    b.metric("Judge agrees the label is wrong", f"{agree:.0%}" if agree is not None else "–",
             help="Among flagged rows the judge answered YES or NO: the share where it says NO.")
    b.caption("The queue's actions now use the verdicts: relabel (judge says NO and names a label), "
              "keep but ambiguous (judge says YES), needs review (not judged or UNKNOWN).")


def precision_tab(db, ds: Dataset, user: auth.User) -> None:
    """Audit page, Precision tab: from reviewers' decisions, how many flags were right, by band;
    the errors likely left in the open queue; spot checks of unflagged rows."""
    from . import charts, precision
    res = precision.flag_precision(db, ds)
    if not res["bands"]:
        st.info("Run the audit first.")
        return
    c = st.columns(3)
    p = res["precision"]
    c[0].metric("Flagged rows decided", f"{res['decided']:,}")
    c[1].metric("Really wrong", "–" if p is None else f"{p:.0%}",
                help=None if p is None else f"95% interval {res['low']:.0%}–{res['high']:.0%}")
    rem = res["remaining"]
    c[2].metric("Errors left in the open queue", "–" if rem is None else f"≈{rem['estimate']:,.0f}",
                help=None if rem is None else f"95% interval {rem['low']:,.0f}–{rem['high']:,.0f} among {rem['open']:,} open flagged rows")
    if rem is not None:
        st.caption(f"Of the {rem['open']:,} flagged rows still open, about {rem['estimate']:,.0f} are likely wrong "
                   f"(between {rem['low']:,.0f} and {rem['high']:,.0f}). When that is small, the rest of the queue is not worth the time.")
    else:
        st.caption("Decide some flagged rows in the review queue: precision comes from those decisions.")
    st.plotly_chart(charts.precision_by_band(res["bands"]), key="precision_chart")
    st.markdown("**Spot checks**: random unflagged rows put in the queue measure what the flags miss.")
    sp = precision.spot_results(db, ds)
    if user.can("lead"):
        c1, c2 = st.columns([1, 2], vertical_alignment="bottom")
        k = c1.number_input("Rows", min_value=1, max_value=1000, value=20, step=10, key="spot_n")
        if c2.button(f"Add {int(k)} random unflagged rows to the queue", key="spot_add"):
            try:
                added = precision.add_spot_checks(db, ds, user, int(k))
                st.success(f"Added {plural(added, 'row')}: reviewers find them under 'Spot checks' in the queue.")
                sp = precision.spot_results(db, ds)
            except ReviewError as exc:
                error(exc)
    if sp and sp["added"]:
        line = f"{sp['added']:,} spot-check rows, {sp['decided']:,} decided, {sp['wrong']:,} found wrong"
        if sp["miss_rate"] is not None:
            est, lo, hi = sp["missed_estimate"]
            line += (f": miss rate {sp['miss_rate']:.1%} ({sp['low']:.1%}–{sp['high']:.1%}), so about {est:,.0f} "
                     f"({lo:,.0f}–{hi:,.0f}) errors among the {sp['unflagged']:,} unflagged rows.")
        st.markdown(line)


def model_tab(run: dict) -> None:
    """Audit page, Model tab: which model the run chose and on what evidence; each class's share of
    the queue against cleanlab's estimate of its wrong labels."""
    params, m = run.get("params") or {}, run.get("metrics") or {}
    if params.get("held-out log-likelihood"):          # several annotators: how the consensus method was chosen
        text_model = params.get("model")
        st.markdown(f"**Consensus**: {escape_md(str(params.get('method', '–')))}"
                    + (f"; text model: {escape_md(str(text_model))}" if text_model and text_model != "consensus of annotators" else ""))
        st.caption(escape_md(str(params.get("why", ""))) + ". Each method is fitted without a fifth of the labels and "
                   "scored by how well its consensus predicts them (mean log-likelihood; higher is better).")
        st.dataframe([{"method": k, "held-out log-likelihood": v} for k, v in params["held-out log-likelihood"].items()],
                     hide_index=True, key="consensus_methods",
                     column_config={"held-out log-likelihood": st.column_config.NumberColumn(format="%.4f")})
        return
    if isinstance(params.get("candidates"), dict):     # NER: the token models and their mixture
        st.markdown(f"**Token model**: {escape_md(str(params.get('model', '–')))}")
        if params.get("why"):
            st.caption(escape_md(params["why"]) + ". Log loss: mean negative log-likelihood of the given tags on documents "
                       "the model did not see (lower is better).")
        st.dataframe([{"candidate": {"sgd": "logistic regression", "crf": "CRF"}.get(k, k), "log loss": v["log loss"],
                       "seconds": v["seconds"]} for k, v in params["candidates"].items()],
                     hide_index=True, key="token_models", column_config={"log loss": st.column_config.NumberColumn(format="%.4f")})
        return
    st.markdown(f"**Model**: {escape_md(str(params.get('model', '–')))}")
    if params.get("choice"):
        st.caption(escape_md(params["choice"]) + " Log loss: mean negative log-likelihood of the given labels on rows "
                   "the model did not see (lower is better); `review audit --model NAME` forces a family.")
    cands = params.get("candidates") or []
    if cands:
        st.dataframe([{"candidate": c["name"], "features": c["view"], "log loss, fold 1": c["fold1_nll"],
                       "log loss, all folds": c["nll"],
                       "weight": c["weight"], "seconds": c["seconds"]} for c in cands],
                     hide_index=True, width="stretch", key="candidates_table",
                     column_config={"weight": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.2f"),
                                    "log loss, fold 1": st.column_config.NumberColumn(format="%.3f"),
                                    "log loss, all folds": st.column_config.NumberColumn(
                                        format="%.3f", help="Only the finalists (the best of each family on fold 1) "
                                                            "finish every fold."),
                                    "seconds": st.column_config.NumberColumn(format="%.2f")})
        if params.get("chars") and params["chars"] != "used":
            st.caption(f"Character n-grams: not tried ({escape_md(params['chars'])}).")
    classes = m.get("classes") or []
    if classes:
        st.markdown("**Classes in the queue**: a class far more present at the top of the queue than in cleanlab's "
                    "estimate of the wrong labels points at the model, not at the labels.")
        shares = ("share of rows", "share of flagged", "share of the top of the queue", "share of estimated wrong labels")
        st.dataframe([{"class": c["label"], "rows": c["rows"], "share of rows": 100 * c["data_share"],
                       "flagged": c["flagged"], "share of flagged": 100 * c["flagged_share"],
                       "share of the top of the queue": 100 * c["top_share"], "estimated wrong labels": c["estimated_errors"],
                       "share of estimated wrong labels": 100 * c["error_share"]} for c in classes],
                     hide_index=True, width="stretch", key="classes_table",
                     column_config={k: st.column_config.NumberColumn(format="%.1f%%") for k in shares})


def selfcheck_tab(db, ds: Dataset, user: auth.User) -> None:
    """Audit page, Self-check tab: inject known errors into a copy of the labels, audit the copy, show recall per kind."""
    from . import selfcheck
    st.markdown("How much would the audit find on **your** data? The self-check injects known errors into a copy of "
                "the labels (3% random flips, 3% swaps between the two classes the model confuses most, a block of 3% "
                "of rows shifted by one), audits the copy the same way and counts what it flags. Your labels, runs "
                "and reviews do not change.")
    if user.can("lead"):
        c1, c2 = st.columns([1, 3], vertical_alignment="bottom")
        seed = c1.number_input("Seed", min_value=0, max_value=10_000, value=0, step=1, key="selfcheck_seed",
                               help="Another seed draws other rows.")
        if c2.button("Run the self-check", key="selfcheck_run", help="About as long as an audit run."):
            bar = st.progress(0.0, text="Starting")
            try:
                selfcheck.run_selfcheck(db, ds.id, user, seed=int(seed), progress=progress_callback(bar))
                bar.empty()
            except ReviewError as exc:
                bar.empty()
                error(exc)
    done = selfcheck.self_checks(db, ds)
    if not done:
        st.info("No self-check yet." + ("" if user.can("lead") else " A lead runs it."))
        return
    last = done[0]
    st.markdown(f"**Latest** (seed {last.seed}, {last.created_at[:19].replace('T', ' ')} by {escape_md(last.created_by)}): "
                + escape_md(last.summary()))
    cols = st.columns(len(last.kinds))
    for col, k in zip(cols, last.kinds):
        col.metric(f"{k.kind.capitalize()} found", f"{k.recall:.0%}", help=f"{k.found:,} of {k.injected:,} injected")
    st.caption(f"Swapped classes: {escape_md(last.pair[0])} and {escape_md(last.pair[1])}. {last.flagged:,} rows flagged "
               f"on the copy, {last.injected_share_of_flagged:.0%} of them injected; the rest are rows the audit doubts "
               "anyway, some of them real errors.")
    if len(done) > 1:
        st.dataframe([{"id": r.id, "at": r.created_at[:19].replace("T", " "), "by": r.created_by, "seed": r.seed,
                       **{k.kind: k.recall for k in r.kinds}, "model": r.model} for r in done],
                     hide_index=True, width="stretch", key="selfchecks_table")
