"""What the chat page does in the browser alone, without a run of the script: copy a message, bring a question
just sent into view, "jump to latest", Esc stops an answer, ↑ in the empty chat box edits the last question,
Ctrl+K searches the chats, Ctrl+Shift+O starts a new one, the chat list shows more as it scrolls.

One script for the page, installed once per browser tab (`st.html` with JavaScript, in a hidden container).
Its text must hold no `<` before a letter or `/` (no markup in strings, no `a<b`): Streamlit's sanitiser
(DOMPurify, SAFE_FOR_XML) then drops the whole script without a word (tests/test_page_script.py).
It leans on what Streamlit (checked on 1.67) puts in the page: the scrolling `stAppScrollToBottomContainer`
(which keeps the page at the bottom only while the reader has not scrolled up: a question sent from higher up
stayed out of view), the chat box's `stChatInput`, `stChatInputTextArea` and `stChatInputSubmitButton`, and
the `st-key-…` class of a keyed button, the sidebar's `stSidebar` (`data-collapsed`) and `stExpandSidebarButton`.
tests/test_browser_chat_surface.py and tests/test_browser_chat_list.py fail if they move.
"""
from __future__ import annotations

import json

import streamlit as st

from atri.i18n import t

STOP_KEY = "stop_answer"  # atri/ui/chat.py's Stop button
EDIT_KEY = "edit"  # and the last question's Edit button
SEARCH_KEY, NEW_CHAT_KEY, MORE_KEY = "conversation_search", "new_chat", "list_more"  # atri/ui/conversations.py's

STYLE = """<style>
.st-key-atri_page_script { display: none; }
.atri-jump { position: fixed; z-index: 99; display: none; align-items: center; justify-content: center;
    width: 2.25rem; height: 2.25rem; border-radius: 50%; transform: translateX(-50%); cursor: pointer;
    border: 1px solid rgba(128, 128, 128, 0.35); background: var(--atri-jump-bg, #fff); color: inherit;
    box-shadow: 0 2px 6px rgba(0, 0, 0, 0.18); }
.atri-jump.atri-shown { display: inline-flex; }
@media (prefers-color-scheme: dark) { .atri-jump { --atri-jump-bg: #2d2b27; color: #edebe8; } }
</style>"""

SCRIPT = """<script>
window.__atriJumpLabel = %(jump_label)s;
if (window.__atriJumpButton) {
  window.__atriJumpButton.title = window.__atriJumpLabel;
  window.__atriJumpButton.setAttribute('aria-label', window.__atriJumpLabel);
}
if (!window.__atriPage) {
  window.__atriPage = true;
  const scroller = () => document.querySelector('[data-testid=stAppScrollToBottomContainer]');
  const chatBox = () => document.querySelector('[data-testid=stChatInput]');
  const byKey = (key) => [...document.querySelectorAll(`.st-key-${key} button`)];
  const toBottom = (behavior) => { const main = scroller(); if (main) main.scrollTo({top: main.scrollHeight, behavior}); };

  // Copy: the button's text, to the clipboard. navigator.clipboard needs a secure context (HTTPS or
  // localhost); a plain-HTTP address on a LAN falls back to the older execCommand.
  const copyFallback = (text) => {
    const area = document.createElement('textarea');
    area.value = text; area.setAttribute('readonly', ''); area.style.position = 'fixed'; area.style.opacity = '0';
    document.body.appendChild(area); area.select(); document.execCommand('copy'); area.remove();
  };
  document.addEventListener('click', async (event) => {
    const button = event.composedPath().find((node) => node.classList && node.classList.contains('atri-copy'));
    if (!button) return;
    const text = button.dataset.copy || '';
    try {
      if (!navigator.clipboard) throw new Error('no clipboard');
      await navigator.clipboard.writeText(text);
    } catch (error) {
      copyFallback(text);
    }
    button.classList.add('atri-copied');
    setTimeout(() => button.classList.remove('atri-copied'), 1500);
  });

  // Sending brings the question into view: to the bottom while it is drawn; from there Streamlit's own
  // container follows the answer for as long as the reader stays at the bottom.
  let following = null;
  const stopFollowing = () => { clearInterval(following); following = null; };
  const follow = () => {
    stopFollowing();
    let times = 0;
    following = setInterval(() => { toBottom('auto'); if (++times >= 15) stopFollowing(); }, 100);
  };
  for (const intent of ['wheel', 'touchmove']) document.addEventListener(intent, stopFollowing, {capture: true, passive: true});
  const inChatBox = (event) => event.composedPath().some((node) => node.dataset && node.dataset.testid === 'stChatInput');
  document.addEventListener('click', (event) => {
    if (event.composedPath().some((node) => node.dataset && node.dataset.testid === 'stChatInputSubmitButton')) follow();
  }, true);
  document.addEventListener('keydown', (event) => {
    if (event.isComposing) return;
    if (['PageUp', 'Home', 'ArrowUp'].includes(event.key) && !inChatBox(event)) stopFollowing();
    if (event.key === 'Enter' && !event.shiftKey && inChatBox(event) && event.target.value.trim()) {
      follow();
    } else if (event.key === 'ArrowUp' && inChatBox(event) && event.target.value === '') {
      const edit = byKey('%(edit_key)s').pop();  // the last question's Edit
      if (edit) { event.preventDefault(); edit.click(); }
    } else if (event.key === 'Escape' && !document.querySelector('[data-testid=stPopoverBody], [role=dialog]')) {
      const stop = byKey('%(stop_key)s').pop();
      if (stop) { event.preventDefault(); stop.click(); }
    }
  }, true);

  // Ctrl+K (Cmd+K on a Mac) searches the chats, Ctrl+Shift+O starts a new one, as in other chat apps. By the
  // key's place too (event.code): on a Russian or Greek layout event.key is not a Latin letter.
  const pressed = (event, letter) => event.key.toLowerCase() === letter || event.code === `Key${letter.toUpperCase()}`;
  const openSidebar = () => {
    const sidebar = document.querySelector('[data-testid=stSidebar]');
    const expand = document.querySelector('[data-testid=stExpandSidebarButton]');
    if (!sidebar || !expand || sidebar.dataset.collapsed !== 'true') return;
    (expand.tagName === 'BUTTON' ? expand : expand.querySelector('button') || expand).click();
  };
  document.addEventListener('keydown', (event) => {
    if (event.isComposing || !(event.ctrlKey || event.metaKey) || event.altKey) return;
    if (!event.shiftKey && pressed(event, 'k')) {
      event.preventDefault();
      openSidebar();
      const focus = () => {
        const search = document.querySelector('.st-key-%(search_key)s input');
        if (search) { search.focus(); search.select(); }
      };
      focus();
      setTimeout(focus, 300);  // a folded sidebar (a phone) slides open first
    } else if (event.shiftKey && pressed(event, 'o')) {
      const start = byKey('%(new_chat_key)s').pop();
      if (start) { event.preventDefault(); start.click(); }
    }
  }, true);

  // The chat list shows more as its end scrolls into view: its "Show more" button is pressed for the reader,
  // at most once a second and a half (the run it starts adds the next page; Streamlit keeps the same button
  // element below it, so that element cannot say whether it was pressed).
  const scrollBox = (node) => {  // the box that clips it: the list's own, else the sidebar's
    for (let up = node.parentElement; up; up = up.parentElement) {
      if (['auto', 'scroll'].includes(getComputedStyle(up).overflowY)) return up.getBoundingClientRect();
    }
    return null;
  };
  let morePressedAt = 0, moreLater = null;
  const showMore = () => {
    const more = byKey('%(more_key)s').pop();
    if (!more || !more.checkVisibility()) return;
    const r = more.getBoundingClientRect(), box = scrollBox(more);
    const top = Math.max(box ? box.top : 0, 0), bottom = Math.min(box ? box.bottom : window.innerHeight, window.innerHeight);
    if (r.top > bottom + 100 || r.bottom < top || r.right < 0 || r.left > window.innerWidth) return;
    const wait = morePressedAt + 1500 - Date.now();
    if (wait > 0) {  // look again then: a reader already at the end scrolls no more
      clearTimeout(moreLater);
      moreLater = setTimeout(showMore, wait + 50);
      return;
    }
    morePressedAt = Date.now();
    more.click();
  };
  document.addEventListener('scroll', showMore, true);

  // "Jump to latest", above the chat box while the reader is scrolled up.
  const jump = document.createElement('button');
  jump.type = 'button';
  jump.className = 'atri-jump';
  const icon = document.createElement('span');
  icon.className = 'atri-icon';
  icon.setAttribute('aria-hidden', 'true');
  icon.textContent = 'arrow_downward';
  jump.appendChild(icon);
  jump.title = window.__atriJumpLabel;
  jump.setAttribute('aria-label', window.__atriJumpLabel);
  jump.addEventListener('click', () => toBottom('smooth'));
  document.body.appendChild(jump);
  window.__atriJumpButton = jump;
  const place = () => {
    const main = scroller(), box = chatBox();
    const away = Boolean(main && box) && main.scrollHeight - main.scrollTop - main.clientHeight > 150;
    jump.classList.toggle('atri-shown', away);
    if (away) {
      const r = box.getBoundingClientRect();
      jump.style.left = `${r.left + r.width / 2}px`;
      jump.style.top = `${r.top - 48}px`;
    }
  };
  document.addEventListener('scroll', place, true);
  window.addEventListener('resize', place);
  setInterval(place, 700);  // also after the page changes under a still reader (another page, a new chat)
}
</script>"""


def page_script(lang: str) -> None:
    """Drawn on every page run, always as the same element: its style, and the script in a hidden container."""
    st.html(STYLE)
    script = SCRIPT % {"jump_label": json.dumps(t(lang, "jump_to_latest"), ensure_ascii=False),
                       "edit_key": EDIT_KEY, "stop_key": STOP_KEY, "search_key": SEARCH_KEY,
                       "new_chat_key": NEW_CHAT_KEY, "more_key": MORE_KEY}
    with st.container(key="atri_page_script"):
        st.html(script, unsafe_allow_javascript=True)
