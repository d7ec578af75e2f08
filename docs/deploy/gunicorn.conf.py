# gunicorn -c gunicorn.conf.py app.main:app
# gunicorn manages the processes and binds the socket; each worker runs turboasgi.
worker_class = "turboasgi.workers.TurboWorker"
bind = "127.0.0.1:8000"
workers = 2
# -> turboasgi's timeout_keep_alive (seconds an idle keep-alive connection stays open)
keepalive = 5
# a worker whose event loop is stuck this long is killed and replaced
timeout = 30
# after SIGTERM, workers have this long to finish requests in flight
graceful_timeout = 20
# -> turboasgi's forwarded_allow_ips (X-Forwarded-For/Proto from nginx on the same host)
forwarded_allow_ips = "127.0.0.1"
# recycle workers now and then (a slow leak in the app cannot grow for ever)
max_requests = 10000
max_requests_jitter = 1000
accesslog = "-"
