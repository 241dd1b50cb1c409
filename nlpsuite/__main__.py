from nlpsuite.cli import main

main()
