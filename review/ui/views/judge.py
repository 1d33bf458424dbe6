"""The Audit page's Judge tab: the LLM judge's endpoint, its plan, the run with Cancel, the results."""

from __future__ import annotations

import streamlit as st

from review import auth, safe_text
from review.datasets import Dataset
from review.errors import ReviewError
from review.ui import shell


def judge_config():
    """The judge's endpoint: the page's fields (this session only) over .streamlit/secrets.toml
    (llm_base_url, llm_model, llm_api_key) over the environment. The key never leaves memory and
    goes only to the URL configured beside it: a URL typed here that is another runs without it."""
    from review import judge

    try:
        secrets = {k: st.secrets.get(f"llm_{k}", "") for k in ("base_url", "model", "api_key")}
    except Exception:  # no secrets.toml: fine
        secrets = {}
    typed = {k: st.session_state.get(f"judge_{k}") or "" for k in ("base_url", "model")}
    return judge.config_from(typed, secrets=secrets)


def judge_tab(db, ds: Dataset, user: auth.User) -> None:
    """Audit page, Judge tab: endpoint status, the cost of a run before it starts, run with a
    progress bar and cancel, the verdicts."""
    from review import charts, judge

    if ds.task != "text" or ds.mapping.multi:
        st.info("The judge works on single-label text classification datasets.")
        return
    try:
        cfg = judge_config()
        cfg_error = None
    except ReviewError as exc:
        cfg, cfg_error = None, str(exc)
    if user.can("lead"):
        shown = safe_text.code(judge.shown_url(cfg.base_url, cfg.api_key)) if cfg else ""
        with st.expander(
            "Endpoint"
            + (
                f": {safe_text.md(cfg.model)} at {shown}" + (" (without the key)" if cfg.key_withheld else "")
                if cfg
                else " (not configured)"
            ),
            expanded=cfg is None or cfg.key_withheld,
        ):
            st.caption(
                judge.SETUP_HELP + " The fields below override the URL and model for this session; a URL "
                "typed here that is not the configured one runs without the key."
            )
            c1, c2 = st.columns(2)
            c1.text_input("Base URL", key="judge_base_url", placeholder="https://api.openai.com/v1")
            c2.text_input("Model", key="judge_model", placeholder="gpt-4o-mini")
            if cfg is not None and not cfg.key_withheld:
                st.caption(judge.key_status(cfg, url=safe_text.code))
        key_note = st.empty()  # always drawn, so the fields below keep their place when the note comes or goes
        if cfg is not None and cfg.key_withheld:  # said before the run, outside the expander: always in sight
            key_note.warning(judge.key_status(cfg, url=safe_text.code), icon=":material/key_off:")
    if cfg_error:
        st.error(safe_text.md_message(cfg_error))  # it quotes the URL typed: data, not Markdown
    counts = judge.verdict_counts(db, ds)
    flash = st.session_state.pop("judge_flash", None)
    if flash:
        st.success(flash)
    if user.can("lead"):
        flagged = sum(counts.get(k, 0) for k in ("YES", "NO", "UNKNOWN", "not judged"))
        c1, c2 = st.columns([1, 2], vertical_alignment="bottom")
        n = c1.number_input(
            "Rows to judge, most suspect first",
            min_value=1,
            max_value=max(flagged, 1),
            value=min(flagged, 50) or 1,
            step=10,
            key="judge_limit",
        )
        if cfg is None:
            c2.button("Run the judge", disabled=True, key="judge_run", help="Configure an endpoint first")
        else:
            p = judge.plan(db, ds, cfg.model, int(n))
            if c2.button(
                f"Run the judge on {p.rows:,} rows ({shell.plural(p.calls, 'call')}, {p.cached:,} cached)",
                type="primary",
                key="judge_run",
                disabled=p.rows == 0,
            ):
                st.button(
                    "Cancel", key="judge_cancel", help="Stops the run, calls in flight too; verdicts so far are kept"
                )
                bar = st.progress(0.0, text="Starting")
                try:
                    got = judge.run_judge(db, ds, user, cfg, int(n), progress=shell.progress_callback(bar))
                    st.session_state["judge_flash"] = (
                        f"Judged {shell.plural(got.rows, 'row')}: {got.calls:,} calls, {got.cached:,} cached; "
                        f"YES {got.YES:,}, NO {got.NO:,}, UNKNOWN {got.UNKNOWN:,}."
                    )
                    st.rerun()
                except ReviewError as exc:
                    bar.empty()
                    shell.error(exc)
    if not counts or counts.get("not judged", 0) == sum(
        counts.get(k, 0) for k in ("YES", "NO", "UNKNOWN", "not judged")
    ):
        st.caption("No verdict yet." + ("" if user.can("lead") else " A lead runs the judge."))
        return
    a, b = st.columns([2, 1])
    a.plotly_chart(charts.judge_verdicts(counts), key="judge_chart")
    agree = counts.get("agreement")
    b.metric(
        "Judge agrees the label is wrong",
        f"{agree:.0%}" if agree is not None else "–",
        help="Among flagged rows the judge answered YES or NO: the share where it says NO.",
    )
    b.caption(
        "The queue's actions now use the verdicts: relabel (judge says NO and names a label), "
        "keep but ambiguous (judge says YES), needs review (not judged or UNKNOWN)."
    )
