from tradelane.cli import main

main()
