// Limits the page, the AWS stack and the server share, in one place. infra/config.py reads
// MAX_UPLOAD_BYTES from this file and gives it to the function as EMOTION_MAX_BODY_BYTES (API
// Gateway base64-encodes a body into Lambda's 6 MB event, so 4 MB is the most that fits); the
// server's own default is tested equal to it (tests/function/test_settings.py).
export const MAX_UPLOAD_BYTES = 4_000_000;

// POST /faces shrinks a photo to this longer side before detecting (EMOTION_DETECT_SIDE), so
// the page sends nothing larger: a phone photo goes out as a JPEG of a few hundred KB.
export const PHOTO_SEND_SIDE = 1024;
