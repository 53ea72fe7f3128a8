"""Every UI string, in Chinese and English."""
from __future__ import annotations

LANGUAGES = {"zh": "中文", "en": "English"}

STRINGS: dict[str, tuple[str, str]] = {
    # key: (zh, en)
    "app_title": ("Atri 聊天", "Atri chat"),
    "chat_placeholder": ("输入消息,可粘贴或上传图片…", "Message Atri — paste or attach images…"),
    "new_chat": ("新对话", "New chat"),
    "language": ("语言", "Language"),
    "provider": ("服务商", "Provider"),
    "model": ("模型", "Model"),
    "custom_model": ("其他模型 ID(可选)", "Other model id (optional)"),
    "custom_model_help": ("填写后覆盖上面的选择", "Overrides the choice above when filled in"),
    "api_key": ("API Key(仅保存在本次会话)", "API key (kept in this session only)"),
    "api_key_missing": ("{provider} 需要 API Key:在 .env 中设置 {env},或在上方输入。",
                        "{provider} needs an API key: set {env} in .env, or enter one above."),
    "temperature": ("温度", "Temperature"),
    "thinking": ("深度思考", "Thinking"),
    "thinking_budget": ("思考预算(token)", "Thinking budget (tokens)"),
    "thinking_unavailable": ("此模型不能切换思考模式。", "This model cannot switch thinking on or off."),
    "thinking_always": ("此模型总是先思考再回答。", "This model always thinks before answering."),
    "thinking_hidden": ("此模型会思考,但不返回思考过程。", "This model reasons but does not return its reasoning."),
    "json_mode": ("JSON 模式", "JSON mode"),
    "json_unsupported_hint": ("此模型不支持 JSON 模式,将仅通过提示词要求 JSON。",
                              "This model has no JSON mode; JSON is asked for in the prompt only."),
    "persona": ("人设", "Persona"),
    "system_prompt": ("系统提示词", "System prompt"),
    "image_urls": ("图片链接(每行一个,随下一条消息发送)", "Image URLs (one per line, sent with your next message)"),
    "image_url_refused": ("已忽略非 http(s) 链接:{url}", "Ignored a link that is not http(s): {url}"),
    "image_too_big": ("图片 {name} 超过 {limit} MB,未发送。", "Image {name} is larger than {limit} MB and was not sent."),
    "image_not_image": ("{name} 不是图片,未发送。", "{name} is not an image and was not sent."),
    "images_need_data": ("该服务商只接受上传的图片,不接受 http(s) 链接。", "This provider only accepts uploaded images, not http(s) links."),
    "settings": ("设置", "Settings"),
    "thinking_live": ("思考中…", "Thinking…"),
    "thought_for": ("思考了 {seconds:.1f} 秒", "Thought for {seconds:.1f} s"),
    "reasoning_tokens_label": ("{tokens:,} 个思考 token", "{tokens:,} reasoning tokens"),
    "budget_label": ("预算 {budget:,}", "budget {budget:,}"),
    "reasoning": ("思考过程", "Reasoning"),
    "raw_view": ("原始请求与响应", "Raw request and response"),
    "raw_request": ("请求(不含 Key)", "Request (without the key)"),
    "raw_response": ("响应", "Response"),
    "facts_ttft": ("首 token {seconds:.2f} 秒", "first token {seconds:.2f} s"),
    "facts_total": ("共 {seconds:.1f} 秒", "total {seconds:.1f} s"),
    "facts_tokens": ("输入 {prompt} · 输出 {completion} · 思考 {reasoning} · 缓存 {cached}",
                     "in {prompt} · out {completion} · reasoning {reasoning} · cached {cached}"),
    "facts_estimated": ("≈ 为本地估算(服务端未返回用量)", "≈ counted locally (the server sent no usage)"),
    "finish_length": ("回答达到长度上限,被截断了。", "The answer hit the length limit and was cut off."),
    "finish_content_filter": ("回答被服务商的内容过滤截断。", "The provider's content filter cut the answer."),
    "json_invalid": ("返回内容不是有效的 JSON:{error}", "The answer is not valid JSON: {error}"),
    "retry": ("重试", "Retry"),
    "interrupted_marker": ("(回答中断,以上为已收到的部分)", "(answer interrupted — the part above is what arrived)"),
    "note_json_word_added": ("JSON 模式要求消息中出现 “json”:已在系统提示词中加入说明。",
                             "JSON mode needs the word “json” in the messages: an instruction was added to the system prompt."),
    "note_json_no_thinking": ("此模型在 JSON 模式下不能思考:本次已关闭思考。",
                              "This model cannot think in JSON mode: thinking was turned off for this answer."),
    "note_json_unsupported": ("此模型不支持 JSON 模式:仅通过提示词要求 JSON。",
                              "This model has no JSON mode: JSON was asked for in the prompt only."),
    "note_model_cannot_think": ("此模型不支持思考模式,已直接回答。", "This model cannot think: it answered directly."),
    "note_model_no_vision": ("此模型可能无法读取图片,如报错请换用视觉模型(如 qwen3-vl-plus)。",
                             "This model may not read images; if it fails, pick a vision model (e.g. qwen3-vl-plus)."),
    # errors: what happened, then what to do
    "error_auth": ("API Key 无效(401)。请检查 Key,并确认 Key 的地域与接口地址一致(国内站与国际站不同)。",
                   "The API key was refused (401). Check the key, and that its region matches the base URL (mainland and international endpoints differ)."),
    "error_forbidden": ("无权访问此模型(403)。请检查账号是否已开通该模型。", "Access to this model is denied (403). Check that your account has it enabled."),
    "error_not_found": ("找不到该模型或接口(404)。请检查模型 ID 与接口地址。", "Model or endpoint not found (404). Check the model id and base URL."),
    "error_rate_limit": ("请求太频繁(429,每分钟请求数超限)。请等一分钟后重试。", "Too many requests (429, requests per minute). Wait a minute, then retry."),
    "error_burst": ("请求增长过快(429)。请稍等几秒后重试。", "Request rate increased too quickly (429). Wait a few seconds, then retry."),
    "error_quota": ("额度已用完(429,token 配额)。重试无效,请检查账户额度或换用其他模型。",
                    "Quota exhausted (429, token allowance). Retrying will not help: check your account quota or pick another model."),
    "error_bad_request": ("请求被拒绝(400):{detail}", "The request was refused (400): {detail}"),
    "error_moderation": ("输入或输出可能包含不当内容,被服务商的内容审核拦截。请修改后再试。",
                         "The provider's content moderation blocked this input or output. Rephrase and try again."),
    "error_context_too_long": ("对话太长,超出模型的上下文长度。请开启新对话或换用更长上下文的模型。",
                               "The conversation is longer than the model's context window. Start a new chat or pick a model with a longer context."),
    "error_server": ("服务商出错(5xx)。请稍后重试。", "The provider had an internal error (5xx). Retry in a moment."),
    "error_timeout": ("等待回答超时。请重试,或换用更快的模型。", "The answer timed out. Retry, or pick a faster model."),
    "error_connection": ("无法连接到服务商。请检查网络与接口地址。", "Could not reach the provider. Check the network and the base URL."),
    "error_interrupted": ("连接在回答途中中断。已保留收到的部分,可以重试。", "The connection broke mid-answer. What arrived is kept; you can retry."),
    "error_stream_error": ("服务商在回答途中报错:{detail}", "The provider reported an error mid-answer: {detail}"),
    "error_stopped": ("已停止。", "Stopped."),
    "error_unknown": ("发生未知错误({detail})。请重试。", "Something unexpected went wrong ({detail}). Please retry."),
    "error_no_connection": ("此服务商尚未配置 API Key:请在侧边栏输入 Key 或选择其他服务商,然后点“重试”。",
                            "This provider has no API key yet: enter one in the sidebar or pick another provider, then press Retry."),
    # first run / local engine
    "local_starting": ("正在启动内置离线模型(首次需组装模型文件,约几秒)…", "Starting the built-in offline model (the first start assembles the model file, a few seconds)…"),
    "local_failed": ("内置离线模型无法启动:{reason}", "The built-in offline model could not start: {reason}"),
    "setup_hint": ("要使用云端模型,请在 .env 中设置 DASHSCOPE_API_KEY(或 OPENAI_API_KEY、DEEPSEEK_API_KEY),或在侧边栏输入 Key。",
                   "To use a cloud model, set DASHSCOPE_API_KEY (or OPENAI_API_KEY, DEEPSEEK_API_KEY) in .env, or enter a key in the sidebar."),
    "empty_chat": ("你好!我是 Atri。有什么想聊的?", "Hi! I'm Atri. What shall we talk about?"),
}

PERSONAS: dict[str, tuple[str, str]] = {
    "atri": ("猫娘 Atri", "Atri the cat-girl"),
    "assistant": ("简洁助手", "Concise assistant"),
    "translator": ("中英翻译", "zh⇄en translator"),
}

PERSONA_PROMPTS: dict[str, str] = {
    "atri": "你是一只可爱的猫娘,名字叫Atri,会软软地对用户喵喵叫",
    "assistant": "You are a helpful, concise assistant. Answer in the user's language.",
    "translator": "You translate between Chinese and English. Reply with the translation only.",
}


def language_for(locale: str | None) -> str:
    return "zh" if (locale or "").lower().startswith("zh") else "en"


def t(lang: str, key: str, **values: object) -> str:
    zh, en = STRINGS[key]
    text = zh if lang == "zh" else en
    return text.format(**values) if values else text
