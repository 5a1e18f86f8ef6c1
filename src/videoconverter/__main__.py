from videoconverter.cli import main

raise SystemExit(main())
