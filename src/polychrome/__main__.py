from polychrome.cli import main

main()
