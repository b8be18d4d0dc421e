"""The words of the central's pages, in Vietnamese (the default) and English."""
from __future__ import annotations

__all__ = ["LANGUAGES", "WORDS"]

LANGUAGES = ("vi", "en")

WORDS = {
    "vi": {
        "title": "Máy chủ kiểm dịch", "sites": "Điểm kiểm dịch", "kiosks": "Máy kiểm tra",
        "entries": "Lượt vào", "report": "Báo cáo ngày", "logout": "Đăng xuất", "login": "Đăng nhập",
        "token": "Mã truy cập của người vận hành", "login_failed": "Mã truy cập không đúng.",
        "too_many": "Thử quá nhiều lần; xin đợi một phút rồi thử lại.",
        "csrf": "Biểu mẫu đã hết hạn; xin tải lại trang.",
        "site": "Điểm", "kiosk": "Máy", "today": "Hôm nay", "allow": "Cho vào", "deny": "Từ chối",
        "review": "Xem xét", "app_share": "Có Bluezone", "valid_share": "Khai báo hợp lệ",
        "chart_title": "14 ngày: lượt vào (cột) và tỷ lệ có Bluezone (đường)",
        "hour_chart": "Lượt vào theo giờ", "last_seen": "Lần đồng bộ cuối", "last_entry": "Lượt vào cuối",
        "backlog": "Chờ gửi", "health": "Tình trạng", "version": "Phiên bản", "held": "Lượt đã nhận",
        "not_reported": "máy chưa báo", "never": "chưa bao giờ",
        "from": "Từ ngày", "to": "Đến ngày", "decision": "Quyết định", "any": "Tất cả", "search": "Tìm",
        "time": "Giờ", "holder": "Họ tên", "declaration": "Khai báo", "app": "Ứng dụng", "reasons": "Lý do",
        "override": "Bảo vệ quyết định", "next_page": "Trang sau", "first_page": "Trang đầu", "csv": "Tải CSV",
        "no_entries": "Không có lượt vào nào.", "date": "Ngày", "show": "Xem", "hour": "Giờ", "total": "Tổng",
        "sent_state": "Trạng thái gửi thư", "sent": "đã gửi", "sending": "đang gửi", "failed": "gửi lỗi",
        "missed": "quá hạn", "unsent": "chưa gửi", "send_now": "Gửi ngay", "send_again": "Gửi lại",
        "no_mail": "Chưa cấu hình người nhận báo cáo cho điểm này.", "sent_ok": "Máy chủ thư đã nhận báo cáo",
        "send_failed": "Không gửi được", "busy": "Một tiến trình khác đang gửi báo cáo này; xin thử lại sau.",
        "recipients": "Người nhận", "no_sites": "Tài khoản này không được xem điểm nào.",
        "forbidden": "Tài khoản này không được xem điểm đó.", "bad_param": "Tham số không hợp lệ",
        "language": "English", "percent_of": "tỷ lệ",
    },
    "en": {
        "title": "Checkpoint central", "sites": "Sites", "kiosks": "Kiosks", "entries": "Entries",
        "report": "Daily report", "logout": "Log out", "login": "Log in", "token": "Operator token",
        "login_failed": "That token is not valid.", "too_many": "Too many attempts; wait a minute and try again.",
        "csrf": "The form has expired; reload the page.",
        "site": "Site", "kiosk": "Kiosk", "today": "Today", "allow": "Allowed", "deny": "Denied",
        "review": "Review", "app_share": "With Bluezone", "valid_share": "Valid declaration",
        "chart_title": "14 days: entries (bars) and Bluezone-confirmed share (line)",
        "hour_chart": "Entries by hour", "last_seen": "Last sync", "last_entry": "Last entry",
        "backlog": "Backlog", "health": "Health", "version": "Version", "held": "Entries received",
        "not_reported": "not reported", "never": "never",
        "from": "From", "to": "To", "decision": "Decision", "any": "Any", "search": "Search",
        "time": "Time", "holder": "Name", "declaration": "Declaration", "app": "App", "reasons": "Reasons",
        "override": "Guard override", "next_page": "Next page", "first_page": "First page", "csv": "Download CSV",
        "no_entries": "No entries.", "date": "Date", "show": "Show", "hour": "Hour", "total": "Total",
        "sent_state": "Mail state", "sent": "sent", "sending": "sending", "failed": "failed",
        "missed": "missed", "unsent": "not sent", "send_now": "Send now", "send_again": "Send again",
        "no_mail": "No report recipients are configured for this site.",
        "sent_ok": "The mail server accepted the report", "send_failed": "Not sent",
        "busy": "Another process is sending this report; try again later.",
        "recipients": "Recipients", "no_sites": "This credential may read no site.",
        "forbidden": "This credential may not read that site.", "bad_param": "Invalid parameter",
        "language": "Tiếng Việt", "percent_of": "share",
    },
}
