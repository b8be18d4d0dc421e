"""The guard screen's words, one catalogue per language (Vietnamese first)."""

CATALOGUE = {
    "vi": {
        "allow": "MỜI VÀO", "deny": "TỪ CHỐI", "review": "CHỜ KIỂM TRA",
        "idle": "Vui lòng đưa mã QR vào camera",
        "recent": "Lượt gần đây", "today": "Hôm nay", "entries": "lượt",
        "app": "Ứng dụng", "confirmed": "đã xác nhận", "likely": "có thể có",
        "not_detected": "không phát hiện",
        "camera": "Camera", "ble": "Bluetooth", "sync": "Đồng bộ", "log": "Nhật ký",
        "ok": "ổn", "offline": "mất kết nối", "backlog": "chờ gửi",
        "unknown_holder": "(không rõ tên)",
    },
    "en": {
        "allow": "ALLOW", "deny": "DENY", "review": "REVIEW",
        "idle": "Please show your QR code to the camera",
        "recent": "Recent entries", "today": "Today", "entries": "entries",
        "app": "App", "confirmed": "confirmed", "likely": "likely",
        "not_detected": "not detected",
        "camera": "Camera", "ble": "Bluetooth", "sync": "Sync", "log": "Log",
        "ok": "ok", "offline": "offline", "backlog": "waiting",
        "unknown_holder": "(no name)",
    },
}
