// Temporary development server (to be deleted).
package main

import (
	"net/http/httputil"
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/tileserver/tileserver/girder/web"
)

func main() {
	e := echo.New()
	u, _ := url.Parse("http://127.0.0.1:18931")
	p := httputil.NewSingleHostReverseProxy(u)
	e.Any("/api/*", echo.WrapHandler(p))
	web.Register(e, web.Config{})
	e.Logger.Fatal(e.Start("127.0.0.1:18932"))
}
