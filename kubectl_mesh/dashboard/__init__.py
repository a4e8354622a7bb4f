"""`kubectl mesh dashboard TARGET`: a proxy's Envoy admin page (or istiod's ControlZ or debug
page) in the browser, through a local port piped to the one channel to the pod port."""
