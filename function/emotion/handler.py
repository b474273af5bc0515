"""AWS Lambda entry point: the same ASGI app, loaded once at init, wrapped by Mangum."""

from mangum import Mangum

from emotion.app import create_app

app = create_app()
handler = Mangum(app, lifespan="off")
