import base64
import io

from PIL import Image

from atri.images import MAX_UPLOAD_BYTES, ImageBatch, decode_data_url, file_to_data_url, parse_image_urls, shorten_data_urls


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "orange").save(buffer, format="PNG")
    return buffer.getvalue()


def test_only_http_links_are_taken():
    batch = parse_image_urls("https://a.example/cat.png\nhttp://b.example/x.jpg, ftp://c/x.png javascript:alert(1)")
    assert batch.urls == ["https://a.example/cat.png", "http://b.example/x.jpg"]
    assert [values["url"] for _, values in batch.problems] == ["ftp://c/x.png", "javascript:alert(1)"]


def test_an_uploaded_image_becomes_a_data_url_that_decodes_back():
    data = png(64, 32)
    batch = ImageBatch()
    file_to_data_url("cat.png", data, batch)
    assert batch.urls[0].startswith("data:image/png;base64,") and not batch.problems
    assert decode_data_url(batch.urls[0]) == data


def test_files_that_the_provider_would_refuse_are_stopped_here():
    batch = ImageBatch()
    file_to_data_url("huge.png", b"\0" * (MAX_UPLOAD_BYTES + 1), batch)
    file_to_data_url("notes.txt", b"not an image", batch)
    file_to_data_url("tiny.png", png(5, 5), batch)  # DashScope wants sides of 10 px or more
    file_to_data_url("thread.png", png(2010, 10), batch)  # aspect ratio over 200:1
    assert batch.urls == []
    assert [key for key, _ in batch.problems] == ["image_too_big", "image_not_image", "image_not_image", "image_not_image"]


def test_big_data_urls_are_abbreviated_for_display_only():
    url = "data:image/png;base64," + base64.b64encode(b"x" * 3000).decode()
    shown = shorten_data_urls({"messages": [{"content": [{"image_url": {"url": url}}]}]})
    assert "KB)" in shown["messages"][0]["content"][0]["image_url"]["url"]
    assert len(shown["messages"][0]["content"][0]["image_url"]["url"]) < 80
