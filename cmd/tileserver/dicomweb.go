package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/tileserver/tileserver/girder"
	"github.com/tileserver/tileserver/girder/store"
	"github.com/tileserver/tileserver/tilecache"
	"github.com/tileserver/tileserver/tilesource"
	"github.com/tileserver/tileserver/tilesource/dicom/dicomweb"
	"github.com/tileserver/tileserver/tilesource/pipeline"
)

// importDICOMwebCmd is the subcommand that stores an item for a series on a
// DICOMweb server, as POST /api/v1/large_image/dicomweb does.
const importDICOMwebCmd = "import-dicomweb"

// runImportDICOMweb parses `tileserver import-dicomweb --url … --study …
// --series … [--name …] [--folder-id …]` plus the server's own flags (for
// --data, --slides, --config), opens the series once to check it and writes
// its item to the store. The store is a single-writer database: with the
// server running, use the HTTP route instead.
func runImportDICOMweb(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tileserver "+importDICOMwebCmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var req girder.DICOMwebImport
	fs.StringVar(&req.URL, "url", "", "DICOMweb service root, http or https (for Orthanc http://host:8042/dicom-web)")
	fs.StringVar(&req.Study, "study", "", "Study Instance UID")
	fs.StringVar(&req.Series, "series", "", "Series Instance UID")
	fs.StringVar(&req.Name, "name", "", "item name (default: the series UID)")
	fs.StringVar(&req.FolderID, "folder-id", "", "folder id to put the item in (default: the root folder)")
	// The server's options are accepted too and handed to loadSettings, so
	// --data, --slides and --config mean what they mean for the server.
	server := map[string]*string{}
	for _, o := range options {
		if listOptions[o.name] {
			p := new(string)
			fs.Var(listFlag{textFlag{p}}, o.name, o.usage)
			server[o.name] = p
			continue
		}
		server[o.name] = fs.String(o.name, o.def, o.usage)
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: tileserver %s --url URL --study UID --series UID [--name NAME] [--folder-id ID] [server flags]\n\n"+
			"Adds an item that serves a whole-slide series held by a DICOMweb server.\n"+
			"Run it while the server is stopped (the item store has one writer);\n"+
			"a running server takes POST /api/v1/large_image/dicomweb instead.\n"+
			"The item lives in this server's item database only: replicas behind a load\n"+
			"balancer should configure the archive with --dicomweb NAME=URL instead.\n\nFlags:\n", importDICOMwebCmd)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var serverArgs []string
	fs.Visit(func(f *flag.Flag) {
		if _, ok := server[f.Name]; ok {
			serverArgs = append(serverArgs, "--"+f.Name+"="+f.Value.String())
		}
	})
	cfg, err := loadSettings(serverArgs, lookupEnv, stderr)
	if err != nil {
		return err
	}
	if req.URL == "" || req.Study == "" || req.Series == "" {
		return errors.New("--url, --study and --series are required")
	}
	for _, d := range []string{cfg.Data, cfg.Slides} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	st, err := store.Open(cfg.Data, cfg.Slides)
	if err != nil {
		return fmt.Errorf("%w (is the server running? use POST /api/v1/large_image/dicomweb then)", err)
	}
	defer st.Close()
	sources := tilecache.NewSources(tilecache.DefaultSourcesConfig())
	defer sources.Close()
	pl, err := pipeline.New(pipeline.Config{Sources: sources})
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	srv := girder.New(girder.Config{Logger: log}, pl, st)
	it, err := srv.ImportDICOMweb(ctx, req)
	if err != nil {
		var te *tilesource.Error
		if errors.As(err, &te) {
			if te.Status >= 500 && te.Cause != nil {
				return fmt.Errorf("%s: %v", te.Message, te.Cause)
			}
			return errors.New(te.Message)
		}
		return err
	}
	return json.NewEncoder(stdout).Encode(map[string]string{"_id": it.ID, "name": it.Name, "folderId": it.FolderID})
}

// parseArchives reads the --dicomweb list (NAME=URL,NAME=URL) and each
// archive's credentials from the environment: TILESERVER_DICOMWEB_<NAME>_
// BEARER (a token) or _BASIC (user:password), or _BEARER_FILE / _BASIC_FILE
// naming a file that holds them (a mounted secret). NAME is upper case with
// dashes as underscores. Credentials are kept in memory only.
func parseArchives(list string, lookupEnv func(string) (string, bool)) ([]dicomweb.Archive, error) {
	var out []dicomweb.Archive
	for _, spec := range strings.Split(list, ",") {
		spec = strings.TrimSpace(spec)
		if spec == "" {
			continue
		}
		name, u, ok := strings.Cut(spec, "=")
		if !ok {
			return nil, fmt.Errorf("--dicomweb %q: want NAME=URL", spec)
		}
		a := dicomweb.Archive{Name: strings.TrimSpace(name), URL: strings.TrimSpace(u)}
		if err := a.Validate(); err != nil {
			return nil, fmt.Errorf("--dicomweb: %w", err)
		}
		auth, err := archiveAuth(a.Name, lookupEnv)
		if err != nil {
			return nil, err
		}
		a.Authorization = auth
		out = append(out, a)
	}
	if _, err := dicomweb.NewArchives(out); err != nil {
		return nil, fmt.Errorf("--dicomweb: %w", err)
	}
	return out, nil
}

// archiveAuth returns the Authorization header value for an archive from
// the environment, "" when none is set.
func archiveAuth(name string, lookupEnv func(string) (string, bool)) (string, error) {
	prefix := envName("dicomweb-" + name)
	var found []string
	var auth string
	for _, kind := range []string{"BEARER", "BASIC"} {
		for _, suffix := range []string{"", "_FILE"} {
			env := prefix + "_" + kind + suffix
			v, ok := lookupEnv(env)
			if !ok || v == "" {
				continue
			}
			found = append(found, env)
			if suffix == "_FILE" {
				b, err := os.ReadFile(v)
				if err != nil {
					return "", fmt.Errorf("%s: %w", env, err)
				}
				v = string(b)
			}
			v = strings.TrimSpace(v)
			if v == "" {
				return "", fmt.Errorf("%s: empty credentials", env)
			}
			if kind == "BEARER" {
				auth = "Bearer " + v
			} else {
				if !strings.Contains(v, ":") {
					return "", fmt.Errorf("%s: want user:password", env)
				}
				auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(v))
			}
		}
	}
	if len(found) > 1 {
		return "", fmt.Errorf("archive %s: credentials set more than once (%s): use one", name, strings.Join(found, ", "))
	}
	return auth, nil
}
